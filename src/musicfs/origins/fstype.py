"""Which filesystem an origin is on, and whether inotify can see every change there.

Owns: `needs_polling` (network and FUSE filesystems, where inotify only sees changes made through
this kernel, are polled instead) and `filesystem_type`, read from /proc/self/mountinfo (the entry
with the longest mount point containing the real path, parsed by `musicfs.mountinfo`);
`os.statvfs` cannot tell it (Python exposes no `f_type`).
Concurrency: pure but for reading /proc and `realpath`, which may hang on a dead network share: call
it from a worker thread.
"""

from __future__ import annotations

import logging
import os

from musicfs.mountinfo import parse_mountinfo, read_mountinfo

log = logging.getLogger(__name__)

POLLING_FSTYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs"}  # NFS, SMB/CIFS
    | {"fuse", "fuseblk", "virtiofs", "9p"}  # FUSE (and every fuse.* subtype), VM shares
    | {"ceph", "glusterfs", "lustre", "gpfs", "beegfs", "orangefs", "ocfs2", "gfs2"}  # cluster
    | {"afs", "kafs", "coda", "davfs"}
)
"""Filesystems whose files can change without this kernel seeing it (plus every `fuse.*` subtype)."""


def needs_polling(root: bytes, mountinfo: bytes | None = None) -> bool:
    """True when `root` is on a filesystem where inotify misses changes made elsewhere.

    That is NFS, SMB/CIFS, FUSE (sshfs, rclone, ...), 9p, Ceph, GlusterFS, AFS and the like: inotify
    only reports what goes through this kernel, so a file copied in by another machine goes unseen.
    When the type cannot be found (no /proc), polling is the answer: it is slower but never misses.

    Args:
        root: the origin folder.
        mountinfo: the text of /proc/self/mountinfo; read from there when None (tests pass their own).
    """
    fstype = filesystem_type(root, mountinfo)
    if fstype is None:
        log.info("cannot tell the filesystem of %s; it will be polled", _show(root))
        return True
    return fstype in POLLING_FSTYPES or fstype.startswith("fuse.")


def filesystem_type(root: bytes, mountinfo: bytes | None = None) -> str | None:
    """The type ("ext4", "nfs4", "fuse.sshfs" ...) of the mount holding `root`, or None if unknown.

    The mount is the one whose mount point is the longest prefix of the real path (symlinks resolved);
    of mounts stacked on one point, the last listed (the visible one) wins.
    """
    if mountinfo is None:
        try:
            mountinfo = read_mountinfo()
        except OSError:
            return None
    path = os.path.realpath(root)
    best: tuple[int, str] | None = None
    for entry in parse_mountinfo(mountinfo):
        if _contains(entry.mount_point, path) and (best is None or len(entry.mount_point) >= best[0]):
            best = (len(entry.mount_point), entry.fstype)
    return None if best is None else best[1]


def _contains(mount_point: bytes, path: bytes) -> bool:
    return mount_point == b"/" or path == mount_point or path.startswith(mount_point + b"/")


def _show(root: bytes) -> str:
    """A path for log lines: undecodable bytes are shown as escapes, never raise."""
    return os.fsdecode(root).encode("utf-8", "backslashreplace").decode("utf-8")
