"""Disk-space arithmetic of the cache: when to evict and how much.

Owns: `Watermarks` (a byte limit for the cache's own chunks, plus high/low marks on the free bytes
and inodes of the filesystem it lives on), `DiskSpace` (what statvfs says) and `excess`, the pure
function that says how many bytes and files must go before a new chunk may be written.
Concurrency: pure values and functions; `statvfs_space` is one system call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Watermarks:
    """When eviction starts (high mark) and where it stops (low mark).

    High: the chunks would exceed `max_bytes`, or free bytes or free inodes of the cache filesystem
    would fall below `min_free_fraction` of its size. Low: chunks at most
    `target_bytes_fraction * max_bytes`, free bytes and inodes at least `target_free_fraction`.
    """

    max_bytes: int
    target_bytes_fraction: float = 0.9
    min_free_fraction: float = 0.05
    target_free_fraction: float = 0.10

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if not 0 <= self.target_bytes_fraction <= 1:
            raise ValueError("target_bytes_fraction must be within [0, 1]")
        if not 0 <= self.min_free_fraction <= self.target_free_fraction <= 1:
            raise ValueError("need 0 <= min_free_fraction <= target_free_fraction <= 1")


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """Size and free space of a filesystem; inode counts are 0 where it has no inode limit."""

    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int


@dataclass(frozen=True, slots=True)
class Excess:
    """What must be evicted: at least `bytes` bytes and `files` chunk files (both 0: nothing)."""

    bytes: int = 0
    files: int = 0

    def __bool__(self) -> bool:
        return self.bytes > 0 or self.files > 0


def statvfs_space(path: Path) -> DiskSpace:
    """The space of the filesystem holding `path`, as an unprivileged writer sees it."""
    st = os.statvfs(path)
    return DiskSpace(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files, st.f_favail)


def excess(marks: Watermarks, used_bytes: int, space: DiskSpace, incoming: int = 0) -> Excess:
    """How much to evict before `incoming` more bytes (one new file) may be written; nothing if
    that stays below the high marks."""
    used = used_bytes + incoming
    free = space.free_bytes - incoming
    free_inodes = space.free_inodes - (1 if incoming else 0)
    over_inodes = space.total_inodes > 0 and free_inodes < marks.min_free_fraction * space.total_inodes
    if used <= marks.max_bytes and free >= marks.min_free_fraction * space.total_bytes and not over_inodes:
        return Excess()
    need_bytes = max(
        used - math.floor(marks.target_bytes_fraction * marks.max_bytes),
        math.ceil(marks.target_free_fraction * space.total_bytes) - free,
        0,
    )
    need_files = 0
    if space.total_inodes > 0:
        need_files = max(math.ceil(marks.target_free_fraction * space.total_inodes) - free_inodes, 0)
    return Excess(need_bytes, need_files)
