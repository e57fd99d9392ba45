"""The only way the event loop touches origin files: reads that never block the loop, with deadlines.

Owns: the hand-off of origin I/O from the trio thread to worker threads, one capacity limiter per
origin (a hung origin can use up only its own threads) and a smaller one per file (a single file that
hangs can use up only `THREADS_PER_FILE` of them), the per-operation deadline that turns a hang into
`OriginTimeout` (EIO at the FUSE edge), and telling a vanished origin from a deleted file: an open
that finds no file checks (with the deadline) whether the origin itself is still there, and answers
`OriginUnavailable` (EIO) if not, from the very first request, so a player never takes the tracks of
an unmounted disk for deleted ones.

The fast path: a read whose bytes are already in the page cache is served inline with
preadv2(RWF_NOWAIT), which cannot wait for a device, so it is safe on the event loop and costs no
thread hand-off. Only page-cache misses (and every read on filesystems without RWF_NOWAIT, such as
NFS or FUSE origins) go to a worker thread, under the deadline.

With a chunk cache (`musicfs.core.ports.ChunkCache`, for origins where caching is on), reads of a
file whose version matches the tree go through aligned chunks: a cached chunk is served from the
cache, a missing one is read from the origin and stored; a file whose origin is offline or hung is
opened from the cache alone, and its uncached parts give EIO at once. A file that changed since the
last scan (fstat at open differs) never gets cached bytes. A reader going on where its last read
ended gets whole chunks (kept per handle, and served from as memoryview slices, without copies);
any other read of a cached part asks the cache for just the blocks it covers, so random reads of
cached tracks do not load and check a whole chunk each.
While `OriginStates` says the origin is offline (the start-up, a scan or the health checks found it
so), opens and uncached reads fail at once with `OriginUnavailable` (EIO) instead of each waiting
for its deadline.
Concurrency: all methods are called from the trio thread. Worker threads only run `Origin`
calls. A thread abandoned at its deadline keeps its limiter slots (origin and file) until the
system call returns, so a dead NAS cannot exhaust the process's threads, nor one file its origin's.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import trio

from musicfs.core.errors import (
    OriginError,
    OriginFileChanged,
    OriginFileGone,
    OriginTimeout,
    OriginUnavailable,
)
from musicfs.core.ports import ChunkCache, PictureDecoder
from musicfs.core.types import VersionKey
from musicfs.origins.base import Origin
from musicfs.origins.states import OriginStates

T = TypeVar("T")
THREADS_PER_ORIGIN = 16
THREADS_PER_FILE = 4
_DECODE_BUFFER = 256 * 1024  # reads of a decoder: a few large ones rather than mutagen's small ones


@dataclass(slots=True)
class _FileSlots:
    """The threads one file may hold, and how many calls are using (or waiting for) them."""

    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(THREADS_PER_FILE))
    users: int = 0


class _FileAndOriginLimiter:
    """A limiter for `trio.to_thread.run_sync`: a slot of the file's and one of the origin's, both
    held until the thread really returns (an abandoned thread keeps them)."""

    def __init__(self, origin: trio.CapacityLimiter, files: dict[bytes, _FileSlots], relpath: bytes) -> None:
        self._origin = origin
        self._files = files
        self._relpath = relpath
        self._file = files.setdefault(relpath, _FileSlots())
        self._file.users += 1

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        try:
            await self._file.limiter.acquire_on_behalf_of(borrower)
            try:
                await self._origin.acquire_on_behalf_of(borrower)
            except BaseException:
                self._file.limiter.release_on_behalf_of(borrower)
                raise
        except BaseException:
            self._done()
            raise

    def release_on_behalf_of(self, borrower: object) -> None:
        self._origin.release_on_behalf_of(borrower)
        self._file.limiter.release_on_behalf_of(borrower)
        self._done()

    def _done(self) -> None:
        self._file.users -= 1
        if self._file.users == 0:
            del self._files[self._relpath]


@dataclass(slots=True)
class _Loading:
    """A chunk being loaded; readers of the same chunk wait for it instead of loading it again."""

    done: trio.Event = field(default_factory=trio.Event)
    chunk: bytes | None = None


@dataclass(slots=True)
class OpenHandle:
    """An open origin file. `fd` is -1 when it was opened from the cache alone (origin offline);
    `version` is set when reads may go through the cache."""

    fd: int
    version: VersionKey | None = None
    last_chunk: tuple[int, bytes] | None = None  # the chunk read last: sequential reads reuse it
    next_offset: int = 0  # where the last read ended: a read from here on is sequential
    relpath: bytes = b""  # whose thread slots its reads use


class OriginGateway:
    """Deadline-bound, loop-safe access to one origin's files, optionally through a chunk cache."""

    def __init__(
        self,
        origin: Origin,
        timeout: float,
        cache: ChunkCache | None = None,
        *,
        states: OriginStates | None = None,
        fill_requests: trio.MemorySendChannel[VersionKey] | None = None,
    ) -> None:
        self.origin = origin
        self.timeout = timeout
        self.cache = cache
        self.states = states if states is not None else OriginStates()
        self.fill_requests = fill_requests  # tracks read from the origin go here to be cached whole
        self._limiter = trio.CapacityLimiter(THREADS_PER_ORIGIN)
        self._cache_limiter = trio.CapacityLimiter(THREADS_PER_ORIGIN)
        self._file_slots: dict[bytes, _FileSlots] = {}
        self.inline_reads = 0
        self.thread_reads = 0
        self.cache_reads = 0
        self.timeouts = 0
        self._fill_asked: set[VersionKey] = set()
        self._loading: dict[tuple[VersionKey, int], _Loading] = {}

    async def open(self, relpath: bytes, version: VersionKey | None = None) -> OpenHandle:
        """Open a file. With a cache and the `version` the tree shows, reads may come from the cache,
        and a file that cannot be opened because its origin is offline or hung is served from it."""
        version = version if self.cache is not None else None
        try:
            fd = await self._open(relpath)
        except (OriginUnavailable, OriginTimeout):
            if version is not None and await self._cached(version, 0) is not None:
                return self._pinned(OpenHandle(-1, version, relpath=relpath))
            raise
        if version is not None:
            try:
                found = await self._in_thread(self.origin.version_of, fd, relpath=relpath)
            except OriginError:
                await self._in_thread(self.origin.close, fd)
                raise
            if found != (
                version.size,
                version.mtime_ns,
                version.ctime_ns,
            ):
                version = None  # changed since the last scan: never serve cached bytes of an old version
        return self._pinned(OpenHandle(fd, version, relpath=relpath))

    async def open_unchanged(self, relpath: bytes, mtime_ns: int, ctime_ns: int) -> OpenHandle:
        """Open a file for reads straight from the origin, only if it still has these times (any write
        changes them): a byte range found by the last scan is valid only in the version it scanned.

        Raises:
            OriginFileChanged: the file changed since; the next rescan shows the new version.
        """
        fd = await self._open(relpath)
        try:
            _, found_mtime_ns, found_ctime_ns = await self._in_thread(
                self.origin.version_of, fd, relpath=relpath
            )
        except OriginError:
            await self._in_thread(self.origin.close, fd)
            raise
        if (found_mtime_ns, found_ctime_ns) != (mtime_ns, ctime_ns):
            await self._in_thread(self.origin.close, fd)
            raise OriginFileChanged(f"{os.fsdecode(relpath)} changed since the last scan")
        return OpenHandle(fd, None, relpath=relpath)

    async def decode_unchanged(
        self, relpath: bytes, mtime_ns: int, ctime_ns: int, decode: PictureDecoder
    ) -> bytes | None:
        """What `decode` makes of the file, read straight from the origin, only if the file still
        has these times (`open_unchanged`): a picture its tags hold encoded, for a view file that
        shows it. The whole decode is one call under the deadline, in one of the file's threads.

        Raises:
            OriginFileChanged: the file changed since the last scan.
        """
        handle = await self.open_unchanged(relpath, mtime_ns, ctime_ns)
        try:
            return await self._in_thread(_decode_handle, self.origin, handle, decode, relpath=relpath)
        finally:
            await self.close(handle)

    async def _open(self, relpath: bytes) -> int:
        """Open the origin file; a missing one is `OriginUnavailable` when its whole origin is gone."""
        self._fail_fast_if_offline()
        try:
            return await self._in_thread(self.origin.open, relpath, relpath=relpath)
        except OriginFileGone:
            gone = await self._origin_gone()
            if gone is not None:
                raise OriginUnavailable(f"{self.origin!r} is not there: {gone}") from None
            raise

    async def _origin_gone(self) -> str | None:
        """Why the origin itself is not there (the index knows files of it: the tree shows one), or
        None when it is; an origin that does not answer within the deadline is not there either."""
        try:
            return await self._in_thread(self.origin.unavailable_reason, True)
        except OriginError as exc:
            return str(exc)

    def _pinned(self, handle: OpenHandle) -> OpenHandle:
        """Chunks of open files are never evicted (unpinned in `close`)."""
        if handle.version is not None and self.cache is not None:
            self.cache.pin(handle.version)
        return handle

    @property
    def offline(self) -> str | None:
        """Why the origin is offline (see `OriginStates`), or None."""
        return self.states.offline_reason(self.origin.origin_id)

    def _fail_fast_if_offline(self) -> None:
        why = self.offline
        if why is not None:
            raise OriginUnavailable(f"{self.origin!r} is offline: {why}")

    async def read(self, handle: OpenHandle, size: int, offset: int) -> bytes | bytearray | memoryview:
        if handle.version is not None:
            return await self._read_through_cache(handle, handle.version, size, offset)
        try:
            data = self.origin.read_nowait(handle.fd, size, offset)
        except OSError as exc:
            raise _as_origin_error(exc) from None
        if data is not None:
            self.inline_reads += 1
            return data
        self._fail_fast_if_offline()
        self.thread_reads += 1
        return await self._in_thread(self.origin.read, handle.fd, size, offset, relpath=handle.relpath)

    async def close(self, handle: OpenHandle) -> None:
        if handle.version is not None and self.cache is not None:
            self.cache.unpin(handle.version)
        if handle.fd >= 0:
            await self._in_thread(self.origin.close, handle.fd)

    async def _read_through_cache(
        self, handle: OpenHandle, version: VersionKey, size: int, offset: int
    ) -> bytes | memoryview:
        assert self.cache is not None
        chunk_size = self.cache.chunk_size
        end = min(offset + size, version.size)
        sequential = offset == handle.next_offset
        handle.next_offset = end
        parts: list[bytes | memoryview] = []
        for index in range(offset // chunk_size, (end - 1) // chunk_size + 1 if end > offset else 0):
            start = index * chunk_size
            low, high = max(offset, start) - start, min(end, start + chunk_size) - start
            memo = handle.last_chunk
            if not sequential and (memo is None or memo[0] != index):
                part = await self._in_cache_thread(self.cache.read, version, index, low, high)
                if part is not None:
                    self.cache_reads += 1
                    parts.append(part)
                    continue
            chunk = await self._chunk(handle, version, index)
            parts.append(memoryview(chunk)[low:high])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _chunk(self, handle: OpenHandle, version: VersionKey, index: int) -> bytes:
        """One chunk, from the handle's memo, a load already under way, the cache or the origin.

        The kernel's read-ahead asks for several parts of one chunk at once: they share one load.
        """
        if handle.last_chunk is not None and handle.last_chunk[0] == index:
            return handle.last_chunk[1]
        key = (version, index)
        under_way = self._loading.get(key)
        if under_way is not None:
            await under_way.done.wait()
            if under_way.chunk is not None:
                handle.last_chunk = (index, under_way.chunk)
                return under_way.chunk
        loading = self._loading[key] = _Loading()
        try:
            loading.chunk = await self._load_chunk(handle, version, index)
        finally:
            loading.done.set()
            if self._loading.get(key) is loading:
                del self._loading[key]
        handle.last_chunk = (index, loading.chunk)
        return loading.chunk

    async def _load_chunk(self, handle: OpenHandle, version: VersionKey, index: int) -> bytes:
        chunk = await self._cached(version, index)
        if chunk is not None:
            self.cache_reads += 1
        else:
            if handle.fd < 0:
                raise OriginUnavailable(f"{self.origin!r} is offline and this part is not cached")
            self._fail_fast_if_offline()
            self.thread_reads += 1
            assert self.cache is not None
            length = self.cache.chunk_length(version, index)
            offset = index * self.cache.chunk_size
            chunk = await self._in_thread(self.origin.read, handle.fd, length, offset, relpath=handle.relpath)
            if len(chunk) == length:
                await self._in_cache_thread(self.cache.put, version, index, chunk)
            self._ask_fill(version)
        return chunk

    def _ask_fill(self, version: VersionKey) -> None:
        """A track that was read from the origin gets cached whole, in the background, once."""
        if self.fill_requests is None or version in self._fill_asked:
            return
        self._fill_asked.add(version)
        with contextlib.suppress(trio.WouldBlock):  # the queue is full: it gets cached as it is read
            self.fill_requests.send_nowait(version)

    async def fill(self, version: VersionKey) -> int:
        """Cache every chunk of `version` not cached yet; returns how many were read from the origin."""
        assert self.cache is not None
        handle = await self.open(version.relpath, version)
        try:
            if handle.version is None:
                return 0  # the file changed since the last scan: the next rescan brings the new version
            before = self.thread_reads
            for index in range(-(-version.size // self.cache.chunk_size)):
                await self._chunk(handle, version, index)
                handle.last_chunk = None  # do not hold a chunk per track while filling
            return self.thread_reads - before
        finally:
            await self.close(handle)

    async def _cached(self, version: VersionKey, index: int) -> bytes | None:
        assert self.cache is not None
        return await self._in_cache_thread(self.cache.get, version, index)

    async def _in_cache_thread(self, function: Callable[..., T], *args: object) -> T | None:
        """A cache call in a thread of its own limiter; a hung cache disk is a miss, never a hang."""
        with trio.move_on_after(self.timeout):
            return await trio.to_thread.run_sync(
                function, *args, abandon_on_cancel=True, limiter=self._cache_limiter
            )
        return None

    async def _in_thread(self, function: Callable[..., T], *args: object, relpath: bytes | None = None) -> T:
        """Run an origin call in a worker thread, under the deadline; with `relpath`, the call also
        takes one of that file's slots."""
        limiter = self._limiter
        if relpath is not None:
            limiter = cast(
                trio.CapacityLimiter, _FileAndOriginLimiter(self._limiter, self._file_slots, relpath)
            )
        with trio.move_on_after(self.timeout):
            try:
                return await trio.to_thread.run_sync(function, *args, abandon_on_cancel=True, limiter=limiter)
            except OriginError:
                raise
            except OSError as exc:
                raise _as_origin_error(exc) from None
        self.timeouts += 1
        raise OriginTimeout(f"{self.origin!r}: no answer within {self.timeout:g} s")


def _decode_handle(origin: Origin, handle: OpenHandle, decode: PictureDecoder) -> bytes | None:
    raw = _HandleFile(origin, handle)
    return decode(io.BufferedReader(raw, _DECODE_BUFFER))


class _HandleFile(io.RawIOBase):
    """An open origin file as a seekable binary file for a decoder (blocking `Origin.read` calls:
    used only in a worker thread). Its `name` is the file's, as mutagen uses it to tell formats."""

    def __init__(self, origin: Origin, handle: OpenHandle) -> None:
        super().__init__()
        self._origin = origin
        self._fd = handle.fd
        self.name = os.fsdecode(handle.relpath)
        self._size = origin.version_of(handle.fd)[0]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        data = self._origin.read(
            self._fd, min(len(buffer), max(self._size - self._position, 0)), self._position
        )
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _as_origin_error(exc: OSError) -> OriginError:
    if exc.errno == errno.ENOENT:
        return OriginFileGone(os.strerror(exc.errno))
    return OriginError(exc.strerror or str(exc))
