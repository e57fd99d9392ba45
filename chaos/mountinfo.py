"""Reading the mount table for tests: what is mounted at exactly a path (escaped names decoded).

The daemon's own lookup is the one used, so tests see the mount table exactly as `musicfs` does.
"""

from __future__ import annotations

from musicfs.daemon.mounts import find_mount
from musicfs.mountinfo import MountEntry

__all__ = ["MountEntry", "mount_at"]

mount_at = find_mount
