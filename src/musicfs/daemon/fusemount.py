"""The one call of `pyfuse3.init`, with what libfuse and fusermount3 say on failure made one line.

Owns: `mount_fuse`. libfuse and the setuid fusermount3 it may run write their reasons to file
descriptor 2, while pyfuse3 only raises `RuntimeError("fuse_session_mount failed")`; so descriptor 2
points at a temporary file for the length of the call. On failure that text becomes a
`MountFailedError` (exit 7); on success whatever libfuse wrote is passed on to the real stderr.
Concurrency: called on the trio thread before the request loop and the background tasks start; a
line another thread logs in that instant is captured and passed on too.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pyfuse3

from musicfs.core.errors import MountFailedError

_HINTS = {
    "failed to open /dev/fuse: Permission denied": (
        "this user may not use FUSE: run as root or give it access to /dev/fuse"
    ),
}


def mount_fuse(operations: pyfuse3.Operations, mountpoint: str, options: set[str]) -> None:
    """`pyfuse3.init`; MountFailedError with libfuse's own reason if the mount fails."""
    failure: Exception | None = None
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            pyfuse3.init(operations, mountpoint, options)
        except (RuntimeError, OSError) as exc:
            failure = exc
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        said = captured.read().decode(errors="replace")
    if failure is None:
        sys.stderr.write(said)
        return
    reason = "; ".join(line.strip() for line in said.splitlines() if line.strip()) or str(failure)
    hints = [hint for known, hint in _HINTS.items() if known in reason]
    raise MountFailedError(f"cannot mount {mountpoint}: {reason}" + "".join(f" ({hint})" for hint in hints))
