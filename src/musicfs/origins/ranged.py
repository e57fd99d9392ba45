"""A remote file as a seekable binary stream that fetches only what it is asked for (issue 9).

Owns: `RangedStream`, the file object remote origins hand to tag readers: mutagen reads a file's head,
seeks to its tail (ID3v1, APE tags) and reads there, so a scan reads tags without downloading whole
tracks. Reads are served in aligned blocks from a small LRU block cache; the blocks a read misses
are fetched with one ranged request per run of adjacent missing blocks. The fetch function's errors
(an `OriginError`: the server is gone, the file changed) pass through unchanged.
Concurrency: one stream is used by one thread (a tag reader); it holds no locks.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

Fetch = Callable[[int, int], bytes]  # (offset, length) -> exactly those bytes (fewer only at the end)

BLOCK_SIZE = 64 * 1024
BLOCKS_KEPT = 16  # 1 MiB per stream at most


class RangedStream(io.RawIOBase):
    """`size` bytes read through `fetch`; `name` is what tag readers see as the file name. `first`:
    the file's first bytes when they are known already (whole blocks, or the whole file)."""

    def __init__(
        self,
        size: int,
        fetch: Fetch,
        name: str,
        *,
        first: bytes = b"",
        block_size: int = BLOCK_SIZE,
        blocks: int = BLOCKS_KEPT,
    ) -> None:
        super().__init__()
        self.size = size
        self.name = name
        self._fetch = fetch
        self._block_size = block_size
        self._kept = blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        for index in range(min(len(first) // block_size, blocks)):
            self._keep(index, first[index * block_size : (index + 1) * block_size])
        if first and len(first) == size and len(first) % block_size:
            self._keep(len(first) // block_size, first[len(first) // block_size * block_size :])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill `buffer` from the current position, completely unless the file ends first (a short
        read would be taken for the end of the file)."""
        want = min(len(buffer), self.size - self._position)
        if want <= 0:
            return 0
        start, end = self._position, self._position + want
        first, last = start // self._block_size, (end - 1) // self._block_size
        blocks = self._blocks_for(first, last)
        view = memoryview(buffer).cast("B")
        written = 0
        for index in range(first, last + 1):
            block = blocks[index]
            base = index * self._block_size
            piece = block[max(start, base) - base : min(end, base + len(block)) - base]
            view[written : written + len(piece)] = piece
            written += len(piece)
        self._position += written
        return written

    def _blocks_for(self, first: int, last: int) -> dict[int, bytes]:
        """Blocks `first`..`last`, fetching each run of missing ones in one request."""
        found: dict[int, bytes] = {}
        missing: list[int] = []
        for index in range(first, last + 1):
            block = self._blocks.get(index)
            if block is None:
                missing.append(index)
            else:
                self._blocks.move_to_end(index)
                found[index] = block
        for run_start, run_end in _runs(missing):
            offset = run_start * self._block_size
            length = min((run_end + 1) * self._block_size, self.size) - offset
            data = self._fetch(offset, length)
            for index in range(run_start, run_end + 1):
                at = (index - run_start) * self._block_size
                piece = data[at : at + self._block_size]
                found[index] = piece
                self._keep(index, piece)
        return found

    def _keep(self, index: int, block: bytes) -> None:
        self._blocks[index] = block
        self._blocks.move_to_end(index)
        while len(self._blocks) > self._kept:
            self._blocks.popitem(last=False)


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Sorted block indexes as runs of adjacent ones: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for index in indexes:
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs
