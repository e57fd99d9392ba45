"""Live updates (4, 4.2.4): watch local origins with inotify and ask for a rescan when they change.

Owns: one watching loop per origin. Origins on filesystems where inotify does not see remote changes
(NFS, SMB, FUSE, ...) are left to the polling rescans. A burst of changes arrives as one debounced
batch, so copying a whole album in gives one rescan. When the origin's folder goes away the watcher
is dropped and built again once the folder is back (the health checks say so to the user); when the
kernel's watch limit is hit, the origin falls back to polling, with one warning.
Concurrency: each loop is a supervised trio task that owns its watcher; building a watcher walks the
tree, so it runs in a worker thread, and so does the filesystem-type probe, under a deadline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import trio

from musicfs.origins.local import LocalOrigin
from musicfs.origins.watch import InotifyWatcher, needs_polling

log = logging.getLogger(__name__)

DEBOUNCE = 1.0
FSTYPE_TIMEOUT = 5.0  # finding the filesystem type resolves the path, which a frozen NAS never answers
MAX_DELAY = 10.0


async def watch_origin(
    origin: LocalOrigin, request_rescan: Callable[[str], object], retry_every: float
) -> None:
    """Request a rescan whenever `origin` changes; returns when the origin needs polling instead."""
    name = os.fsdecode(origin.root)
    polled = True  # an origin that does not answer (7.4) is left to the polling and the health checks
    with trio.move_on_after(FSTYPE_TIMEOUT):
        polled = await trio.to_thread.run_sync(needs_polling, origin.root, abandon_on_cancel=True)
    if polled:
        log.info("origin %s is on a network or FUSE filesystem (or hung): changes are found by polling", name)
        return
    while True:
        try:
            watcher = await trio.to_thread.run_sync(InotifyWatcher, origin.root, abandon_on_cancel=True)
        except OSError as exc:
            log.debug("cannot watch %s yet (%s); retrying in %g s", name, exc.strerror, retry_every)
            await trio.sleep(retry_every)
            continue
        with watcher:
            log.info("watching %s for changes (%d folders)", name, len(watcher.watched_folders()))
            while True:
                batch = await watcher.next_batch(DEBOUNCE, MAX_DELAY)
                if batch.incomplete:
                    log.warning(
                        "cannot watch all of %s (inotify watch limit); changes are found by polling", name
                    )
                    return
                if batch.root_gone:
                    break
                if batch.paths or batch.overflow:
                    request_rescan(
                        f"{len(batch.paths)} changes in {name}" if batch.paths else f"changes in {name}"
                    )
        await trio.sleep(retry_every)
