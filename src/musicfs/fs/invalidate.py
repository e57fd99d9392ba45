"""Telling the kernel what changed between two tree snapshots, so `ls` and reads show the new state.

Owns: the diff of two `Tree`s into kernel invalidations: entries that vanished, moved or now show
another version of their file (`invalidate_entry`, so the next lookup brings the new generation and the
kernel retires the old inode), files whose version changed (wherever they now are) and folders whose
listing changed (`invalidate_inode`, which also drops cached pages, so a changed file never serves old
bytes while an unchanged one keeps its page cache, and a folder's listing the kernel keeps in
kernel-cached listings mode, `musicfs.fs.listings`: without it `ls` would show the old listing for good).
Concurrency: called from the rescan worker thread after a publish, never from the trio thread (the
kernel may answer an invalidation only after the request loop has run). Errors for inodes the
kernel does not know are expected and ignored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import pyfuse3

from musicfs.tree.snapshot import Tree

log = logging.getLogger(__name__)


def changed_between(old: Tree, new: Tree) -> tuple[list[tuple[int, bytes, int]], list[int]]:
    """(entries to forget as (parent, name, inode), inodes to refresh) between two snapshots."""
    entries: list[tuple[int, bytes, int]] = []
    inodes: set[int] = set()
    for inode, before in old.items():
        after = new.get(inode)
        changed = after is not None and not before.is_dir and before.version != after.version
        if after is None or after.parent != before.parent or after.name != before.name or changed:
            entries.append((before.parent, before.name, inode))
            inodes.add(before.parent)
        if changed:
            inodes.add(inode)
    for inode, shown in new.items():
        known = old.get(inode)
        if known is None or known.parent != shown.parent or known.name != shown.name:
            inodes.add(shown.parent)
    return entries, sorted(i for i in inodes if old.get(i) is not None)


def invalidate_kernel_cache(old: Tree, new: Tree) -> int:
    """Send the invalidations for old -> new to the kernel; return how many were sent."""
    entries, inodes = changed_between(old, new)
    for parent, name, _inode in entries:
        _quietly(pyfuse3.invalidate_entry, parent, name)
    for inode in inodes:
        _quietly(pyfuse3.invalidate_inode, inode)
    if entries or inodes:
        log.debug("invalidated %d entries and %d inodes", len(entries), len(inodes))
    return len(entries) + len(inodes)


def _quietly(call: Callable[..., None], *args: object) -> None:
    # OSError: the kernel never looked that up, or has forgotten it already.
    with contextlib.suppress(OSError):
        call(*args)
