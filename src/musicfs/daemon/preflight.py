"""Checks of the paths a command will use, each failing with one clear line and its exit code.

Owns: the rules for origins (exist, are folders, readable), the mountpoint (exists, is a folder, not
inside an origin nor containing one) and the state directory (created 0700 if missing, writable).
Concurrency: blocking file-system calls, run on the main thread before the event loop starts.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

from musicfs.core.config import Config
from musicfs.core.errors import MountpointError, OriginConfigError, StateDirError

log = logging.getLogger(__name__)


def check_origins(config: Config, known: Callable[[Path], bool]) -> None:
    """Refuse origins that are not readable folders, except a missing one the index already knows:
    that is a NAS not mounted (yet), served offline until it appears."""
    for origin in config.origins:
        path = origin.path
        if not path.exists() and known(path):
            log.warning("origin %s is missing; serving what the index knows of it until it appears", path)
            continue
        if not path.exists():
            raise OriginConfigError(f"origin {path} does not exist")
        if not path.is_dir():
            raise OriginConfigError(f"origin {path} is not a folder")
        if not os.access(path, os.R_OK | os.X_OK):
            raise OriginConfigError(f"origin {path} cannot be read (permission denied)")


def check_mountpoint(config: Config) -> Path:
    """Return the mountpoint after checking it; a dead FUSE mount there (ENOTCONN) passes."""
    mountpoint = config.mountpoint
    if mountpoint is None:
        raise MountpointError("no mountpoint given")
    try:
        if not mountpoint.is_dir():
            if mountpoint.exists():
                raise MountpointError(f"mountpoint {mountpoint} is not a folder")
            raise MountpointError(
                f"mountpoint {mountpoint} does not exist; create it with: mkdir -p {mountpoint}"
            )
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise MountpointError(f"mountpoint {mountpoint}: {exc.strerror}") from None
    for origin in config.origins:
        if _inside(origin.path, mountpoint):
            raise OriginConfigError(f"origin {origin.path} is inside the mountpoint {mountpoint}")
        if _inside(mountpoint, origin.path):
            raise OriginConfigError(f"mountpoint {mountpoint} is inside the origin {origin.path}")
    if _inside(config.state_dir, mountpoint):
        raise StateDirError(f"state directory {config.state_dir} is inside the mountpoint {mountpoint}")
    return mountpoint


def prepare_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {state_dir}: {exc.strerror}") from None
    if not state_dir.is_dir():
        raise StateDirError(f"state directory {state_dir} is not a folder")
    if not os.access(state_dir, os.R_OK | os.W_OK | os.X_OK):
        raise StateDirError(f"state directory {state_dir} is not writable (permission denied)")


def _inside(path: Path, folder: Path) -> bool:
    real_path, real_folder = os.path.realpath(path), os.path.realpath(folder)
    return real_path == real_folder or real_path.startswith(real_folder.rstrip("/") + "/")
