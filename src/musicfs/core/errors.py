"""The error classes of MusicFS, classified once here and mapped to exit codes or errno at the edges.

Owns: the exception hierarchy and the exit codes of user errors (documented in README.md).
Concurrency: plain exception classes, no state.

User errors (`UserError` and subclasses) carry an exit code and a one-line message for the CLI.
Domain errors (`OriginError` and subclasses) are raised by origins and turned into errno values only
at the FUSE edge (`musicfs.fs`).
"""

from __future__ import annotations

import errno


class MusicFSError(Exception):
    """Base of every error MusicFS raises on purpose."""


class UserError(MusicFSError):
    """Something the user can fix; the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 1


class ConfigError(UserError):
    """A bad option, config key or value, or template."""

    exit_code = 2


class OriginConfigError(UserError):
    """An origin is missing, not a folder, unreadable, or overlaps the mountpoint."""

    exit_code = 3


class MountpointError(UserError):
    """The mountpoint is missing, not a folder, in a kernel filesystem, or busy with a mount that is not
    ours to clean."""

    exit_code = 4


class StateDirError(UserError):
    """The state (or cache) directory cannot be created, read or written, or lies inside an origin or the
    mountpoint."""

    exit_code = 5


class AlreadyRunningError(UserError):
    """Another MusicFS instance holds the state directory or serves the mountpoint."""

    exit_code = 6


class MountFailedError(UserError):
    """FUSE refused the mount: no access to /dev/fuse, allow_other not permitted for this user, or the
    kernel or fusermount3 said no (their reason is in the message)."""

    exit_code = 7


class TagReadError(MusicFSError):
    """A file's tags could not be read (corrupt, truncated, or not audio after all)."""


class OriginError(MusicFSError):
    """An origin operation failed; `errno` is what the FUSE edge answers with."""

    errno = errno.EIO


class OriginFileGone(OriginError):
    """The file is no longer in its origin."""

    errno = errno.ENOENT


class OriginFileRefused(OriginError):
    """The file is not served: it lies outside its origin (reached through a symlink leading out), or
    the mount is shared with every local user and the origin does not let every user read it
    (docs/threat-model.md)."""

    errno = errno.EACCES


class OriginFileChanged(OriginError):
    """The file changed since the scan that found the part of it a view file shows (an embedded
    cover): that part may be elsewhere now, so nothing is served until the next scan."""

    errno = errno.EIO


class OriginFileNotRegular(OriginError):
    """A FIFO, socket, device or folder stands where a track was; it is never opened."""

    errno = errno.EIO


class OriginTimeout(OriginError):
    """An origin operation passed its deadline (a hung NAS, a dead disk)."""

    errno = errno.EIO


class OriginUnavailable(OriginError):
    """The whole origin is not reachable right now."""

    errno = errno.EIO
