"""The error classes of MusicFS, classified once here and mapped to exit codes or errno at the edges.

Owns: the exception hierarchy and `ExitCode`, the one list of the `musicfs` command's exit codes and
what each means (`musicfs --help` prints it; README.md's table is checked against it by
tests/unit/test_exit_codes.py).
Concurrency: plain exception classes, no state.

User errors (`UserError` and subclasses) carry an exit code and a one-line message for the CLI.
Domain errors (`OriginError` and subclasses) are raised by origins and turned into errno values only
at the FUSE edge (`musicfs.fs`).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of `musicfs`; each member's `meaning` is the short form `musicfs --help` shows."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "success; a mount stopped cleanly"
    USER = 1, "other error (no permission, no answer in time); fsck found a problem"
    USAGE = 2, "bad usage, config file, option value or template"
    ORIGIN = 3, "an origin is missing, unreadable or overlaps the mountpoint"
    MOUNTPOINT = 4, "the mountpoint is missing, unusable, or not a live MusicFS mount"
    STATE_DIR = 5, "the state or cache directory cannot be used (or its disk is full)"
    ALREADY_RUNNING = 6, "already running on this state directory or mountpoint"
    MOUNT_REFUSED = 7, "FUSE refused the mount (the line gives libfuse's reason)"
    INTERNAL = 70, "internal error: a bug (the traceback is logged)"
    INTERRUPTED = 130, "scan or tree interrupted by Ctrl-C"
    STDOUT_CLOSED = 141, "stdout closed by its reader (| head)"


class MusicFSError(Exception):
    """Base of every error MusicFS raises on purpose."""


class UserError(MusicFSError):
    """Something the user can fix; the CLI prints the message on one line and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.USER


class ConfigError(UserError):
    """A bad option, config key or value, or template."""

    exit_code: ExitCode = ExitCode.USAGE


class OriginConfigError(UserError):
    """An origin is missing, not a folder, unreadable, or overlaps the mountpoint."""

    exit_code: ExitCode = ExitCode.ORIGIN


class MountpointError(UserError):
    """The mountpoint is missing, not a folder, in a kernel filesystem, or busy with a mount that is not
    ours to clean."""

    exit_code: ExitCode = ExitCode.MOUNTPOINT


class StateDirError(UserError):
    """The state (or cache) directory cannot be created, read or written, or lies inside an origin or the
    mountpoint."""

    exit_code: ExitCode = ExitCode.STATE_DIR


class AlreadyRunningError(UserError):
    """Another MusicFS instance holds the state directory or serves the mountpoint."""

    exit_code: ExitCode = ExitCode.ALREADY_RUNNING


class MountFailedError(UserError):
    """FUSE refused the mount: no access to /dev/fuse, allow_other not permitted for this user, or the
    kernel or fusermount3 said no (their reason is in the message)."""

    exit_code: ExitCode = ExitCode.MOUNT_REFUSED


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
