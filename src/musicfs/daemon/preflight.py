"""Checks of the paths a command will use, each failing with one clear line and its exit code.

Owns: finding out what each start-up path is (`inspect`: its real path with symlinks resolved, and
whether it exists, is a folder, can be read), each within a deadline, since a frozen NAS makes even a
`realpath` hang for good (7.4); and the rules:
  - paths that overlap (`check_overlaps`, paths-overlap), checked before anything is created: the
    state directory, or (for a mount) the cache directory, equal to or inside an origin (MusicFS
    never writes into an origin) or inside the mountpoint (the daemon would wait on itself), an
    origin inside the mountpoint or the mountpoint inside an origin, a mountpoint in /proc, /sys or
    /dev;
  - origins (`check_origins`): exist, are folders, readable; a missing one the index knows is served
    offline, and one that does not answer is left to the origin wait (`musicfs.daemon.app`). Remote
    origins (a URL) have no path here: they are only looked at by the origin wait, under its deadline;
  - the mountpoint (`check_mountpoint`): exists, is a folder (a dead FUSE mount there passes: it is
    cleaned later, if it is ours);
  - the state directory (`prepare_state_dir`): created 0700 if missing, writable.
A path that does not answer within the deadline is compared by its absolute path (its real path
cannot be known) and its probing thread is left behind (`musicfs.core.deadline`).
Concurrency: blocking file-system calls on the main thread before the event loop starts; the probes
run in threads of their own, waited for with one shared deadline.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from musicfs.core.config import Config
from musicfs.core.deadline import in_thread
from musicfs.core.errors import MountpointError, OriginConfigError, StateDirError

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # a path that has not answered by then is treated as hung (not as an error)
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # kernel filesystems: never a mountpoint


@dataclass(frozen=True, slots=True)
class PathState:
    """What a path was found to be. `real` is the resolved path when it answered, else the absolute
    one; `error` is why a stat failed (other than "does not exist"), e.g. ENOTCONN of a dead mount."""

    path: Path
    real: str
    answered: bool = True
    exists: bool = False
    is_dir: bool = False
    readable: bool = False
    error: int | None = None


@dataclass(frozen=True, slots=True)
class StartPaths:
    """Every path a start-up uses, inspected: origins in config order (None for a remote one)."""

    origins: tuple[PathState | None, ...]
    mountpoint: PathState | None
    state_dir: PathState
    cache_dir: PathState


def inspect(config: Config, timeout: float = PROBE_TIMEOUT) -> StartPaths:
    """Inspect every path of `config` at once, each in a thread; those not answering within `timeout`
    come back with `answered=False`."""
    local = [o.path for o in config.origins if o.path is not None]
    wanted: list[Path] = [*local, config.state_dir, Path(config.cache_dir)]
    if config.mountpoint is not None:
        wanted.append(config.mountpoint)
    probes = {path: in_thread(partial(_inspect_one, path), f"musicfs-probe:{path}") for path in wanted}
    deadline = time.monotonic() + timeout
    found = {path: _outcome(path, future, deadline) for path, future in probes.items()}
    return StartPaths(
        origins=tuple(None if o.path is None else found[o.path] for o in config.origins),
        mountpoint=found[config.mountpoint] if config.mountpoint is not None else None,
        state_dir=found[config.state_dir],
        cache_dir=found[Path(config.cache_dir)],
    )


def _outcome(path: Path, future: Future[PathState], deadline: float) -> PathState:
    try:
        return future.result(max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return PathState(path, os.path.abspath(path), answered=False)


def _inspect_one(path: Path) -> PathState:
    real = os.path.realpath(path)
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return PathState(path, real)
    except OSError as exc:
        return PathState(path, real, exists=True, error=exc.errno)
    is_dir = stat.S_ISDIR(found.st_mode)
    readable = is_dir and os.access(path, os.R_OK | os.X_OK)
    return PathState(path, real, exists=True, is_dir=is_dir, readable=readable)


def check_overlaps(config: Config, paths: StartPaths) -> None:
    """Refuse paths that would write into an origin or make the daemon wait on itself (see the module
    docstring); compares real paths, so a symlink cannot hide an overlap."""
    mountpoint = paths.mountpoint
    if mountpoint is not None:
        for system in SYSTEM_FOLDERS:
            if _inside(mountpoint.real, system):
                raise MountpointError(
                    f"mountpoint {mountpoint.path} is in {system}: use a folder of your own"
                )
        for origin in _local(paths):
            if _inside(mountpoint.real, origin.real):
                raise OriginConfigError(f"mountpoint {mountpoint.path} is inside an origin")
            if _inside(origin.real, mountpoint.real):
                raise OriginConfigError(f"origin {origin.path} is inside the mountpoint")
    written = [("state dir", paths.state_dir)]
    if mountpoint is not None:  # only a mount uses the cache
        written.append(("cache dir", paths.cache_dir))
    for what, folder in written:  # origins are never written (README: exit code 5)
        for origin in _local(paths):
            if _inside(folder.real, origin.real):
                raise StateDirError(f"{what} {folder.path} is inside an origin")
        if mountpoint is not None and _inside(folder.real, mountpoint.real):
            raise StateDirError(f"{what} {folder.path} is inside the mountpoint")


def check_origins(config: Config, paths: StartPaths, known: Callable[[Path], bool]) -> None:
    """Refuse origins that are not readable folders, except a missing one the index already knows:
    that is a NAS not mounted (yet), served offline until it appears. An origin that did not answer
    is not refused: it exists (something hangs there) and is waited for like a missing one."""
    for origin in _local(paths):
        path = origin.path
        if not origin.answered:
            continue
        if not origin.exists and known(path):
            log.warning("origin %s is missing; serving what the index knows of it until it appears", path)
            continue
        if not origin.exists:
            raise OriginConfigError(f"origin {path} does not exist")
        if origin.error is not None:
            raise OriginConfigError(f"origin {path}: {os.strerror(origin.error)}")
        if not origin.is_dir:
            raise OriginConfigError(f"origin {path} is not a folder")
        if not origin.readable:
            raise OriginConfigError(f"origin {path} cannot be read (permission denied)")


def check_mountpoint(config: Config, paths: StartPaths) -> Path:
    """Return the mountpoint after checking it; a dead FUSE mount there (ENOTCONN) passes."""
    mountpoint = paths.mountpoint
    if config.mountpoint is None or mountpoint is None:
        raise MountpointError("no mountpoint given")
    path = mountpoint.path
    if not mountpoint.answered:
        raise MountpointError(f"mountpoint {path} does not answer (a hung mount?)")
    if mountpoint.error is not None and mountpoint.error not in (errno.ENOTCONN, errno.ECONNABORTED):
        raise MountpointError(f"mountpoint {path}: {os.strerror(mountpoint.error)}")
    if mountpoint.error is None and not mountpoint.is_dir:
        if mountpoint.exists:
            raise MountpointError(f"mountpoint {path} is not a folder")
        raise MountpointError(f"mountpoint {path} does not exist; create it")
    return path


def prepare_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"cannot create state dir {state_dir}: {exc.strerror}") from None
    if not state_dir.is_dir():
        raise StateDirError(f"state dir {state_dir} is not a folder")
    if not os.access(state_dir, os.R_OK | os.W_OK | os.X_OK):
        raise StateDirError(f"state dir {state_dir} is not writable (permission denied)")


def _local(paths: StartPaths) -> list[PathState]:
    return [origin for origin in paths.origins if origin is not None]


def _inside(path: str, folder: str) -> bool:
    """True when `path` is `folder` or below it (both already resolved)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")
