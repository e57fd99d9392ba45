"""The instance lock: one MusicFS per state directory, taken before anything else is touched (3.9).

Owns: `state_dir/musicfs.lock`, held with flock for the life of the process (the kernel drops it when
the process dies, even by SIGKILL, so a crash never leaves a stale lock) and holding the owner's PID.
Concurrency: taken once, on the main thread, before the event loop starts.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from musicfs.core.errors import AlreadyRunningError, StateDirError

LOCK_NAME = "musicfs.lock"


class InstanceLock:
    """An exclusive, process-lifetime lock on a state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunningError naming the PID that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirError(f"cannot open lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise AlreadyRunningError(
                    f"state dir {self.path.parent} is used by MusicFS pid {holder}"
                ) from None
            raise StateDirError(f"cannot lock {self.path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
