"""Plain value types shared by all layers.

Owns: `TagSet` (what a track's tags say), `EmbeddedPicture` (where a track's embedded cover is),
`TrackEntry` (a track as the tree layer sees it), `ViewFile` (a shown file as the index stores it and
the tree shows it), `VersionKey`, and `Progress` (how a long step reports `(done, total)`).
Concurrency: every type here is immutable (frozen dataclasses) and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class TagSet:
    """The tags of one audio file, normalised; every field may be missing.

    Strings are stripped and never empty (a missing value is ``None``). Numbers come from forms like
    ``"3"`` and ``"3/12"``; ``year`` is the first four-digit year found in the date. ``mb_albumid`` is
    the MusicBrainz release id (lower case), which tells two albums of one name apart.
    """

    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    title: str | None = None
    genre: str | None = None
    date: str | None = None
    year: int | None = None
    track: int | None = None
    tracktotal: int | None = None
    disc: int | None = None
    disctotal: int | None = None
    compilation: bool = False
    duration: float | None = None
    mb_albumid: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedPicture:
    """The image of a track's embedded front cover, as its bytes lie in the track's file.

    Attributes:
        offset: where the image starts in the file; None when no byte range of the file holds it
            (a Vorbis comment's base64 METADATA_BLOCK_PICTURE, spread over Ogg pages): then it is
            decoded from the track when it is opened.
        size: its length in bytes (decoded).
        ext: what kind of image it is, as a file extension: ``"jpg"`` or ``"png"``.
    """

    offset: int | None
    size: int
    ext: str


@dataclass(frozen=True, slots=True)
class TrackEntry:
    """A track as the tree layer needs it: identity, where it comes from, and its tags.

    Attributes:
        track_id: the index's stable id for this file (also its inode number).
        origin_priority: lower wins when the same track is present in several origins.
        stem: the file name without its extension, as it is in the origin (may hold
            surrogate escapes when the name is not UTF-8).
        ext: the extension without the dot, lower case (``"flac"``).
        tags: the file's tags; ``TagSet()`` when they could not be read.
    """

    track_id: int
    origin_priority: int
    stem: str
    ext: str
    tags: TagSet


@dataclass(frozen=True, slots=True)
class VersionKey:
    """One version of one origin file, as the cache keys it: another version if any field differs."""

    origin_id: int
    relpath: bytes
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True, slots=True)
class ViewFile:
    """A shown file: its inode, where it is shown, where its bytes are and which kind of file it is
    (`musicfs.core.kinds.AUDIO` or `COVER`).

    `size`, `mtime_ns` and `ctime_ns` are the origin file's. `span` is set when only part of it is
    shown: ``(offset, length)`` of the bytes shown (a cover embedded in a track). `encoded` is set
    for a cover stored encoded in the track's tags: its `span` is ``(0, decoded length)`` and its
    bytes are decoded from the track at open (`musicfs.core.ports.PictureDecoder`).
    """

    inode: int
    viewpath: bytes
    origin_id: int
    relpath: bytes
    size: int
    mtime_ns: int
    ctime_ns: int
    kind: str
    span: tuple[int, int] | None = None
    encoded: bool = False
