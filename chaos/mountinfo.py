"""Reading the mount table for tests: is something mounted at a path, and of what type.

Concurrency: plain blocking reads of /proc/self/mountinfo; safe from any thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from musicfs.daemon.mounts import MountEntry, parse_mountinfo


def mount_at(path: Path) -> MountEntry | None:
    """The mount at exactly `path`, or None."""
    with open("/proc/self/mountinfo", "rb") as handle:
        entries = parse_mountinfo(handle.read())
    wanted = os.fsencode(os.path.abspath(path))
    matches = [entry for entry in entries if entry.mount_point == wanted]
    return matches[-1] if matches else None
