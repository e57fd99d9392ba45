"""The inotify system calls and event format, reached through ctypes on libc (no dependency).

Owns: the event bits of <sys/inotify.h>, `WATCH_MASK` (what every folder watch of
`musicfs.origins.watch` asks for), `inotify_init`, `add_watch`, `rm_watch` (errors as OSError with
the path), `InotifyEvent` and `parse_events` (decoding a buffer read from the descriptor).
Concurrency: plain system calls, safe from any thread; the descriptor's owner serialises its use.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
from dataclasses import dataclass

# Event bits from <sys/inotify.h> (the same on every architecture).
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

WATCH_MASK = (
    IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)
"""What every folder watch asks for. IN_ATTRIB stays: some retag tools only touch times and modes."""

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.inotify_rm_watch.restype = ctypes.c_int
    return libc


def _checked(result: int, path: bytes | None = None) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), None if path is None else os.fsdecode(path))
    return result


def inotify_init() -> int:
    """A new non-blocking, close-on-exec inotify descriptor (IN_NONBLOCK and IN_CLOEXEC are O_ flags)."""
    return _checked(int(_libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)))


def add_watch(fd: int, path: bytes, mask: int) -> int:
    """inotify_add_watch: the watch descriptor (the same one again for a folder already watched)."""
    return _checked(int(_libc().inotify_add_watch(fd, path, mask)), path)


def rm_watch(fd: int, wd: int) -> None:
    """inotify_rm_watch, ignoring a watch the kernel already dropped (EINVAL)."""
    _libc().inotify_rm_watch(fd, wd)


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    """One decoded `struct inotify_event`; `name` is empty for events about the watched folder itself."""

    wd: int
    mask: int
    cookie: int
    name: bytes


def parse_events(buffer: bytes) -> list[InotifyEvent]:
    """Decode a buffer read from an inotify descriptor (the kernel only ever returns whole events).

    Raises:
        ValueError: the buffer ends inside an event.
    """
    events = []
    offset = 0
    while offset < len(buffer):
        if offset + _EVENT.size > len(buffer):
            raise ValueError(f"truncated inotify event at offset {offset}")
        wd, mask, cookie, length = _EVENT.unpack_from(buffer, offset)
        start = offset + _EVENT.size
        if start + length > len(buffer):
            raise ValueError(f"truncated inotify event name at offset {offset}")
        name = buffer[start : start + length].split(b"\0", 1)[0]
        events.append(InotifyEvent(wd, mask, cookie, name))
        offset = start + length
    return events
