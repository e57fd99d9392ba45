"""`musicfs unmount`: end the daemon serving a mountpoint, or clean the dead mount it left.

Owns: asking a live MusicFS to stop (SIGTERM to the PID its root reports, then waiting until the
mount is gone, so the command returns only when the unmount happened) and lazily unmounting a dead
one it made (a dead mount of another program is refused, not cleaned).
Concurrency: a short-lived command on the main thread.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from musicfs.core.errors import MountpointError
from musicfs.daemon.mounts import (
    find_mount,
    is_ours,
    lazy_unmount,
    probe,
    refuse_foreign_dead_mount,
    serving_pid,
)

log = logging.getLogger(__name__)


def unmount(mountpoint: Path, timeout: float) -> str:
    """Unmount `mountpoint`; returns what was done, for the user."""
    entry = find_mount(mountpoint)
    if entry is None:
        raise MountpointError(f"nothing is mounted at {mountpoint}")
    state = probe(mountpoint)
    if state == "dead" and not is_ours(entry):
        raise refuse_foreign_dead_mount(mountpoint, entry)
    if state == "dead":
        lazy_unmount(mountpoint)
        return f"cleaned the stale mount at {mountpoint}"
    if not is_ours(entry):
        raise MountpointError(f"{mountpoint} is a {entry.fstype} mount, not MusicFS; not touching it")
    pid = serving_pid(mountpoint)
    if not pid.isdigit():
        lazy_unmount(mountpoint)
        return f"unmounted {mountpoint} (its daemon did not say its PID)"
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if find_mount(mountpoint) is None:
            return f"unmounted {mountpoint}; MusicFS (pid {pid}) stopped"
        time.sleep(0.05)
    raise MountpointError(f"MusicFS (pid {pid}) did not unmount {mountpoint} within {timeout:g} s")
