"""A faulty origin: a real `LocalOrigin` whose reads and opens fail, hang or slow down on purpose.

Owns: `FaultyOrigin` and its `Fault` rules (which paths, what happens). Plugged in at the composition
root or directly in in-process tests; production code never sees this class.
Concurrency: rules are immutable; `release()` wakes every hung call (a threading.Event), so tests can
let stuck worker threads finish before they exit.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import threading
import time
from dataclasses import dataclass

from musicfs.origins.local import LocalOrigin


@dataclass(frozen=True, slots=True)
class Fault:
    """What happens to opens and reads of files whose relative path matches `pattern` (fnmatch)."""

    pattern: str
    action: str  # "hang" | "eio" | "enoent" | "latency"
    seconds: float = 0.0  # for "latency"


class FaultyOrigin(LocalOrigin):
    """A LocalOrigin with injected faults; reads never take the inline (page-cache) path when faulty."""

    def __init__(self, origin_id: int, root: bytes, faults: list[Fault]) -> None:
        super().__init__(origin_id, root)
        self.faults = faults
        self._released = threading.Event()
        self._fd_paths: dict[int, str] = {}
        self.hits = 0

    def release(self) -> None:
        self._released.set()

    def _inject(self, relpath: str) -> None:
        for fault in self.faults:
            if fnmatch.fnmatch(relpath, fault.pattern):
                self.hits += 1
                if fault.action == "hang":
                    self._released.wait()
                elif fault.action == "eio":
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                elif fault.action == "enoent":
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                elif fault.action == "latency":
                    time.sleep(fault.seconds)

    def _faulty(self, relpath: str) -> bool:
        return any(fnmatch.fnmatch(relpath, fault.pattern) for fault in self.faults)

    def open(self, relpath: bytes) -> int:
        fd = super().open(relpath)
        self._fd_paths[fd] = os.fsdecode(relpath)
        return fd

    def read_nowait(self, fd: int, size: int, offset: int) -> bytes | None:
        if self._faulty(self._fd_paths.get(fd, "")):
            return None
        return super().read_nowait(fd, size, offset)

    def read(self, fd: int, size: int, offset: int) -> bytes:
        self._inject(self._fd_paths.get(fd, ""))
        return super().read(fd, size, offset)
