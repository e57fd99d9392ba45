"""Mountpoint state: reading /proc/self/mountinfo, telling live, dead and foreign mounts apart.

Owns: finding the mount at an exact path (escaped characters decoded), probing whether a FUSE mount
still has a daemon behind it, lazily unmounting a dead one that MusicFS made (a dead FUSE mount of
another program is not ours to clean), and refusing everything else (2.7/3.7).
`os.path.ismount` is not used: it says False for a dead FUSE mount. A plain stat is not trusted either
(the kernel may answer it from its attribute cache); the probe is statvfs, which always reaches the
daemon and fails with ENOTCONN when it is gone.
Concurrency: blocking calls with timeouts, used before the event loop starts and by `musicfs unmount`.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import threading
from pathlib import Path

from musicfs.core.errors import AlreadyRunningError, MountpointError
from musicfs.mountinfo import MountEntry, parse_mountinfo, read_mountinfo

log = logging.getLogger(__name__)

FSTYPE = "fuse.musicfs"  # what the mount options fsname=musicfs, subtype=musicfs give in mountinfo
SOURCE = "musicfs"
PROBE_TIMEOUT = 5.0


def find_mount(path: Path) -> MountEntry | None:
    """The mount at exactly `path` (the top one when mounts are stacked), or None."""
    entries = parse_mountinfo(read_mountinfo())
    wanted = os.fsencode(os.path.abspath(path))
    matches = [entry for entry in entries if entry.mount_point == wanted]
    return matches[-1] if matches else None


def probe(path: Path, timeout: float = PROBE_TIMEOUT) -> str:
    """'live', 'dead' (ENOTCONN: no daemon behind the mount) or 'hung' (no answer within `timeout`)."""
    outcome: list[str] = []

    def statvfs() -> None:
        try:
            os.statvfs(path)
            outcome.append("live")
        except OSError as exc:
            outcome.append("dead" if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED) else "live")

    worker = threading.Thread(target=statvfs, name="musicfs-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else "hung"


def lazy_unmount(path: Path) -> None:
    """Detach the mount at `path` (fusermount3 -uz, or umount -l as a fallback)."""
    for command in (["fusermount3", "-u", "-z", "--", str(path)], ["umount", "-l", "--", str(path)]):
        try:
            result = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return
    raise MountpointError(f"cannot unmount the stale mount at {path}; try: fusermount3 -uz {path}")


def is_ours(entry: MountEntry) -> bool:
    """A mount MusicFS made (`musicfs.daemon.service.fuse_options`): type fuse.musicfs, source musicfs."""
    return entry.fstype == FSTYPE and entry.source == SOURCE


def refuse_foreign_dead_mount(path: Path, entry: MountEntry) -> MountpointError:
    """The error for a dead FUSE mount of another program: not ours to clean (2.7)."""
    return MountpointError(
        f"{path} is a dead {entry.fstype} mount of {entry.source}, not MusicFS's, so it is not ours to "
        f"clean; if nothing needs it, unmount it with: fusermount3 -uz {path}"
    )


def serving_pid(path: Path) -> str:
    """The PID a live MusicFS mount reports in its root's `user.musicfs.pid`, or 'unknown'."""
    try:
        return os.getxattr(path, "user.musicfs.pid").decode()
    except OSError:
        return "unknown"


def clear_stale_mount(path: Path) -> bool:
    """Make `path` usable as a mountpoint: unmount a dead MusicFS mount there; refuse anything else.

    Returns True if a stale mount was cleaned. Raises AlreadyRunningError when a live MusicFS serves
    `path` and MountpointError for any other mount, a dead one of another program included: that
    one is not ours to clean.
    """
    entry = find_mount(path)
    if entry is None:
        return False
    state = probe(path) if entry.fstype.startswith("fuse") else "foreign"
    if state == "dead" and not is_ours(entry):
        raise refuse_foreign_dead_mount(path, entry)
    if state == "dead":
        log.warning("cleaning a stale %s mount at %s (its daemon is gone)", entry.fstype, path)
        lazy_unmount(path)
        return True
    if state == "live" and is_ours(entry):
        raise AlreadyRunningError(f"{path} is already served by a running MusicFS (pid {serving_pid(path)})")
    if state == "hung":
        raise MountpointError(
            f"{path} is a {entry.fstype} mount whose daemon does not answer; "
            f"unmount it with: fusermount3 -uz {path}"
        )
    raise MountpointError(f"{path} is busy: a {entry.fstype} mount of {entry.source} is there")
