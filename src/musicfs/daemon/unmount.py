"""`musicfs unmount`: end the daemon serving a mountpoint, or clean the dead mount it left.

Owns: asking a live MusicFS to stop (SIGTERM to the PID its root reports, checked by
`musicfs.daemon.serving`, then waiting until the mount is gone, so the command returns only when the
unmount happened) and lazily unmounting a dead one it made (a dead mount of another program is
refused, not cleaned). Only the user who mounted it, or root, may; a daemon that does not answer
(stopped, hung) is left alone with a one-line error within the timeout.
Concurrency: a short-lived command on the main thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import time
from pathlib import Path

from musicfs.core.errors import MountpointError, UserError
from musicfs.daemon.control import ControlError
from musicfs.daemon.mounts import (
    PROBE_TIMEOUT,
    find_mount,
    is_ours,
    lazy_unmount,
    probe,
    refuse_foreign_dead_mount,
)
from musicfs.daemon.serving import find_serving
from musicfs.mountinfo import MountEntry

log = logging.getLogger(__name__)


def unmount(mountpoint: Path, timeout: float) -> str:
    """Unmount `mountpoint`; returns what was done, for the user."""
    entry = find_mount(mountpoint)
    if entry is None:
        raise MountpointError(f"nothing is mounted at {mountpoint}")
    _refuse_other_users(mountpoint, entry)
    state = probe(mountpoint, min(timeout, PROBE_TIMEOUT))
    if state == "dead" and not is_ours(entry):
        raise refuse_foreign_dead_mount(mountpoint, entry)
    if state == "dead":
        lazy_unmount(mountpoint)
        return f"cleaned the stale mount at {mountpoint}"
    if not is_ours(entry):
        raise MountpointError(f"{mountpoint} is a {entry.fstype} mount, not MusicFS; not touching it")
    if state == "hung":
        raise ControlError(f"MusicFS at {mountpoint} does not answer (stopped or hung?)")
    pid = find_serving(mountpoint, min(timeout, PROBE_TIMEOUT)).pid
    with contextlib.suppress(ProcessLookupError):  # it is exiting already: wait for the mount to go
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if find_mount(mountpoint) is None:
            return f"unmounted {mountpoint}; MusicFS (pid {pid}) stopped"
        time.sleep(0.05)
    raise MountpointError(f"MusicFS (pid {pid}) did not unmount {mountpoint} within {timeout:g} s")


def _refuse_other_users(mountpoint: Path, entry: MountEntry) -> None:
    """Only the user who mounted a FUSE mount (and root) may end it."""
    owner = entry.option("user_id")
    if os.getuid() == 0 or owner is None or not owner.isdigit() or int(owner) == os.getuid():
        return
    try:
        name = pwd.getpwuid(int(owner)).pw_name
    except KeyError:
        name = f"uid {owner}"
    who = "root" if int(owner) == 0 else f"{name} or root"
    raise UserError(f"{mountpoint} was mounted by {name}; only {who} can unmount it")
