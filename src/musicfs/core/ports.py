"""Ports: the interfaces lower layers use without importing the layers that implement them.

Owns: `ChunkCache`, what the read path (`musicfs.origins.gateway`) needs of the content cache
(`musicfs.cache.store.ChunkStore` implements it), and `PictureDecoder`, how the FUSE edge gets the
image of a cover stored encoded in a track's tags without knowing tags
(`musicfs.tags.pictures.decoded_front_cover`, given by the composition root).
Concurrency: implementations are called from worker threads and must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol

from musicfs.core.types import VersionKey

# The front cover a track's tags hold, decoded from its open, seekable file; None if there is none.
PictureDecoder = Callable[[BinaryIO], bytes | None]


class ChunkCache(Protocol):
    """Verified chunks of file versions; every method may fail softly (None / False), never raise,
    and returns within the cache's own deadline, shorter than the reader's (a hung disk is a miss)."""

    chunk_size: int

    def get(self, version: VersionKey, chunk_index: int) -> bytes | None: ...

    def read(self, version: VersionKey, chunk_index: int, start: int, end: int) -> bytes | None: ...

    def put(self, version: VersionKey, chunk_index: int, data: bytes) -> bool: ...

    def chunk_length(self, version: VersionKey, chunk_index: int) -> int: ...

    def pin(self, version: VersionKey) -> None: ...

    def unpin(self, version: VersionKey) -> None: ...
