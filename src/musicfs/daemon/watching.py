"""Live updates (4, 4.2.4): watch local origins with inotify and ask for a rescan when they change.

Owns: one watching loop per origin. Origins on filesystems where inotify does not see remote changes
(NFS, SMB, FUSE, ...) are left to the polling rescans. A burst of changes arrives as one debounced
batch, so copying a whole album in gives one rescan. When the kernel's watch limit is hit, the origin
falls back to polling, with one warning.
Re-arming (origin-remount): inotify watches inodes, not paths, so a disk unmounted and mounted again
at the origin's path (or a folder replaced by another) leaves the watches on the old tree, or on the
folder the new mount covers. The loop therefore checks every `ROOT_CHECK_EVERY` seconds which folder
the origin path names (its device and inode); when that changes, or the watched root is gone, it
builds a new watcher on what is there now and asks for a rescan, so files copied in meanwhile show
up too.
Concurrency: each loop is a supervised trio task that owns its watcher; building a watcher walks the
tree and the root check is a stat, so both run in worker threads (one at a time per origin: a hung
disk holds at most one thread of each), and so does the filesystem-type probe, under a deadline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import trio

from musicfs.origins.base import Origin
from musicfs.origins.fstype import needs_polling
from musicfs.origins.watch import InotifyWatcher

log = logging.getLogger(__name__)

DEBOUNCE = 1.0
FSTYPE_TIMEOUT = 5.0  # finding the filesystem type resolves the path, which a frozen NAS never answers
MAX_DELAY = 10.0
ROOT_CHECK_EVERY = 1.0
Identity = tuple[int, int]


async def watch_origin(origin: Origin, request_rescan: Callable[[str], object], retry_every: float) -> None:
    """Request a rescan whenever `origin` changes; returns when the origin needs polling instead."""
    name = os.fsdecode(origin.root)
    polled = True  # an origin that does not answer (7.4) is left to the polling and the health checks
    with trio.move_on_after(FSTYPE_TIMEOUT):
        polled = await trio.to_thread.run_sync(needs_polling, origin.root, abandon_on_cancel=True)
    if polled:
        log.info("origin %s is on a network or FUSE filesystem (or hung): changes are found by polling", name)
        return
    rearmed = False
    while True:
        identity = await _identity(origin.root)
        if identity is None:
            await trio.sleep(ROOT_CHECK_EVERY)
            continue
        try:
            watcher = await trio.to_thread.run_sync(InotifyWatcher, origin.root, abandon_on_cancel=True)
        except OSError as exc:
            log.debug("cannot watch %s yet (%s); retrying in %g s", name, exc.strerror, retry_every)
            await trio.sleep(retry_every)
            continue
        with watcher:
            log.info("watching %s for changes (%d folders)", name, len(watcher.watched_folders()))
            if rearmed:
                request_rescan(f"{name} is a new folder (mounted again?)")
            outcome = await _follow(watcher, origin.root, identity, request_rescan)
        if outcome == "poll":
            return
        if outcome == "root gone":
            await trio.sleep(ROOT_CHECK_EVERY)  # never spin on a root that keeps vanishing
        rearmed = True


async def _follow(
    watcher: InotifyWatcher, root: bytes, identity: Identity, request_rescan: Callable[[str], object]
) -> str:
    """Pass the watcher's batches on as rescan requests until the origin path names another folder
    ("replaced"), the watched root is gone ("root gone"), or the watch limit was hit ("poll")."""
    name = os.fsdecode(root)
    outcome = "replaced"

    async def batches(cancel_scope: trio.CancelScope) -> None:
        nonlocal outcome
        while True:
            batch = await watcher.next_batch(DEBOUNCE, MAX_DELAY)
            if batch.incomplete:
                log.warning(
                    "cannot watch all of %s (inotify watch limit); changes are found by polling", name
                )
                outcome = "poll"
                break
            if batch.root_gone:
                outcome = "root gone"
                break
            if batch.paths or batch.overflow:
                request_rescan(
                    f"{len(batch.paths)} changes in {name}" if batch.paths else f"changes in {name}"
                )
        cancel_scope.cancel()

    async def root_replaced(cancel_scope: trio.CancelScope) -> None:
        while await _identity(root) == identity:
            await trio.sleep(ROOT_CHECK_EVERY)
        log.info("origin folder %s is not the folder being watched any more; watching it again", name)
        cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(batches, nursery.cancel_scope)
        nursery.start_soon(root_replaced, nursery.cancel_scope)
    return outcome


async def _identity(root: bytes) -> Identity | None:
    """(device, inode) of the folder `root` names now, or None when there is none."""
    try:
        found = await trio.to_thread.run_sync(os.stat, root, abandon_on_cancel=True)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)
