"""The only way the event loop touches origin files: reads that never block the loop, with deadlines.

Owns: the hand-off of origin I/O from the trio thread to worker threads, one capacity limiter per
origin (a hung origin can use up only its own threads), and the per-operation deadline that turns a
hang into `OriginTimeout` (EIO at the FUSE edge).

The fast path: a read whose bytes are already in the page cache is served inline with
preadv2(RWF_NOWAIT), which cannot wait for a device, so it is safe on the event loop and costs no
thread hand-off. Only page-cache misses (and every read on filesystems without RWF_NOWAIT, such as
NFS or FUSE origins) go to a worker thread, under the deadline.

While the health checks (`musicfs.daemon.health`) say the origin is offline, opens and uncached
reads fail at once with `OriginUnavailable` (EIO) instead of each waiting for its deadline.
Concurrency: all methods are called from the trio thread. Worker threads only run `LocalOrigin`
system calls. A thread abandoned at its deadline keeps its limiter slot until the system call
returns, so a dead NAS cannot exhaust the process's threads.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

import trio

from musicfs.core.errors import OriginError, OriginFileGone, OriginTimeout, OriginUnavailable
from musicfs.origins.local import LocalOrigin

T = TypeVar("T")
THREADS_PER_ORIGIN = 16


class OriginGateway:
    """Deadline-bound, loop-safe access to one origin's files."""

    def __init__(self, origin: LocalOrigin, timeout: float) -> None:
        self.origin = origin
        self.timeout = timeout
        self._limiter = trio.CapacityLimiter(THREADS_PER_ORIGIN)
        self.inline_reads = 0
        self.thread_reads = 0
        self.timeouts = 0
        self.offline: str | None = None  # set by the health checks: why the origin is unreachable

    async def open(self, relpath: bytes) -> int:
        self._fail_fast_if_offline()
        return await self._in_thread(self.origin.open, relpath)

    def _fail_fast_if_offline(self) -> None:
        if self.offline is not None:
            raise OriginUnavailable(f"{self.origin!r} is offline: {self.offline}")

    async def read(self, fd: int, size: int, offset: int) -> bytes | bytearray:
        try:
            data = self.origin.read_nowait(fd, size, offset)
        except OSError as exc:
            raise _as_origin_error(exc) from None
        if data is not None:
            self.inline_reads += 1
            return data
        self._fail_fast_if_offline()
        self.thread_reads += 1
        return await self._in_thread(self.origin.read, fd, size, offset)

    async def close(self, fd: int) -> None:
        await self._in_thread(self.origin.close, fd)

    async def _in_thread(self, function: Callable[..., T], *args: object) -> T:
        with trio.move_on_after(self.timeout):
            try:
                return await trio.to_thread.run_sync(
                    function, *args, abandon_on_cancel=True, limiter=self._limiter
                )
            except OriginError:
                raise
            except OSError as exc:
                raise _as_origin_error(exc) from None
        self.timeouts += 1
        raise OriginTimeout(f"{self.origin!r}: no answer within {self.timeout:g} s")


def _as_origin_error(exc: OSError) -> OriginError:
    if exc.errno == errno.ENOENT:
        return OriginFileGone(os.strerror(exc.errno))
    return OriginError(exc.strerror or str(exc))
