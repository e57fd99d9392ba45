"""Which MusicFS serves a mountpoint, for the commands that steer one: `musicfs status|rescan|shutdown|
metrics MOUNTPOINT` and `musicfs unmount MOUNTPOINT`.

Owns: `find_serving`. A path is acted on only if it is itself a MusicFS mount in /proc/self/mountinfo
(fstype `fuse.musicfs`, source `musicfs`): a copy of the mount root, a folder inside the mount, or any
folder that carries the root's attributes steers nothing (7.6). The root's `user.musicfs.pid` and
`user.musicfs.control` are then read from that mount, and the process and the socket they name must
belong to the user who mounted it (`user_id=` in the mount table): a look-alike FUSE mount of another
user cannot point root's commands at root's daemon or at one of root's processes.
Concurrency: blocking calls in the CLI process. Everything that touches the path runs in a daemon
thread with a deadline, since a stat or getxattr on the mount of a stopped daemon waits in the kernel
for good; such a thread is left behind and ends with the command.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from musicfs.core.errors import MountpointError
from musicfs.daemon.control import XATTR_CONTROL, ControlError
from musicfs.daemon.mounts import FSTYPE, find_mount

XATTR_PID = "user.musicfs.pid"  # as answered by musicfs.fs.operations (not imported: pyfuse3 is slow to load)
SOURCE = "musicfs"
ANSWER_TIMEOUT = 5.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Serving:
    """A live MusicFS mount: where it is (symlinks resolved), who mounted it, and its daemon."""

    mountpoint: Path
    owner_uid: int
    pid: int
    control_socket: Path


def find_serving(path: Path, timeout: float = ANSWER_TIMEOUT) -> Serving:
    """The MusicFS mounted at exactly `path`.

    Raises MountpointError (exit 4) when `path` is not a live MusicFS mount or what it reports does
    not belong to its owner, ControlError (exit 1) when its daemon does not answer within `timeout`.
    """
    return within(
        timeout,
        lambda: _ask(path),
        f"MusicFS at {path} does not answer (stopped or hung?)",
    )


def within(timeout: float, work: Callable[[], T], late: str) -> T:
    """The result of `work()`, run in a daemon thread; ControlError(`late`) after `timeout` seconds."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="musicfs-ask-mount", daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    if not outcome:
        raise ControlError(late)
    return outcome[0]


def _ask(path: Path) -> Serving:
    real = Path(os.path.realpath(path))
    entry = find_mount(real)
    if entry is None:
        raise MountpointError(f"nothing is mounted at {path}")
    if entry.fstype != FSTYPE or entry.source != SOURCE:
        raise MountpointError(f"{path} is a {entry.fstype} mount of {entry.source}, not MusicFS")
    owner = entry.option("user_id")
    if owner is None or not owner.isdigit():
        raise MountpointError(f"{path}: the mount table does not say who mounted it")
    try:
        pid_text = os.getxattr(real, XATTR_PID).decode(errors="replace")
        socket = Path(os.fsdecode(os.getxattr(real, XATTR_CONTROL)))
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            raise MountpointError(
                f"{path} is a dead MusicFS mount (its daemon is gone); clean it with: musicfs unmount {path}"
            ) from None
        raise ControlError(f"cannot ask the MusicFS at {path}: {exc.strerror}") from None
    if not pid_text.isdigit():
        raise MountpointError(f"{path} reports no valid PID ({pid_text!r})")
    pid = int(pid_text)
    if _process_uid(pid) != int(owner):
        raise MountpointError(f"{path} names pid {pid}, which is not a process of the user who mounted it")
    try:
        socket_uid: int | None = os.stat(socket).st_uid
    except OSError:
        socket_uid = None  # connecting will say what is wrong
    if socket_uid is not None and socket_uid != int(owner):
        raise MountpointError(f"{path} names a control socket not owned by the user who mounted it")
    return Serving(real, int(owner), pid, socket)


def _process_uid(pid: int) -> int | None:
    """The real user ID of process `pid`, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
