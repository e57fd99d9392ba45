"""The one call of `pyfuse3.init`, with what libfuse and fusermount3 say on failure made one line.

Owns: `mount_fuse`. libfuse and the setuid fusermount3 it may run write their reasons to file
descriptor 2, while pyfuse3 only raises `RuntimeError("fuse_session_mount failed")`; so for the
length of the call descriptor 2 is a pipe that a relay thread reads. On failure what was said becomes
a `MountFailedError` (exit 7). On success it is passed on to the real stderr, and so is whatever a
fusermount3 that stays behind (`auto_unmount`) says later, since its stderr is that pipe.
Concurrency: called on the trio thread before the request loop and the background tasks start; a
line another thread logs in that instant is relayed too. The relay thread ends when the last writer
of the pipe is gone.
"""

from __future__ import annotations

import os
import sys
import threading

import pyfuse3

from musicfs.core.errors import MountFailedError

SAID_TIMEOUT = 2.0  # after a failure, how long to wait for the last words of fusermount3
_HINTS = {
    "failed to open /dev/fuse: Permission denied": (
        "this user may not use FUSE: run as root or give it access to /dev/fuse"
    ),
}


def mount_fuse(operations: pyfuse3.Operations, mountpoint: str, options: set[str]) -> None:
    """`pyfuse3.init`; MountFailedError with libfuse's own reason if the mount fails."""
    read_end, write_end = os.pipe()
    relay = _Relay(read_end)
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    failure: Exception | None = None
    try:
        pyfuse3.init(operations, mountpoint, options)
    except (RuntimeError, OSError) as exc:
        failure = exc
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    if failure is None:
        relay.pass_on()
        return
    said = relay.said(SAID_TIMEOUT)
    reason = "; ".join(line.strip() for line in said.splitlines() if line.strip()) or str(failure)
    hints = [hint for known, hint in _HINTS.items() if known in reason]
    raise MountFailedError(f"cannot mount {mountpoint}: {reason}" + "".join(f" ({hint})" for hint in hints))


class _Relay:
    """Collects what is written to a pipe; once told to, passes all of it on to descriptor 2."""

    def __init__(self, read_end: int) -> None:
        self._read_end = read_end
        self._collected = bytearray()
        self._passing_on = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._run, name="musicfs-fuse-stderr", daemon=True).start()

    def _run(self) -> None:
        try:
            while data := os.read(self._read_end, 4096):
                with self._lock:
                    if self._passing_on:
                        os.write(2, data)
                    else:
                        self._collected += data
        finally:
            os.close(self._read_end)
            self._done.set()

    def pass_on(self) -> None:
        with self._lock:
            self._passing_on = True
            if self._collected:
                os.write(2, bytes(self._collected))

    def said(self, timeout: float) -> str:
        self._done.wait(timeout)
        with self._lock:
            return self._collected.decode(errors="replace")
