"""Which origins go through the content cache, and the cache's life in a mount (issue 5).

Owns: the choice per origin (its `cache` setting; by default on for remote origins and for folders on
network and FUSE filesystems, where reads are slow and the origin may go away, off for local disks),
opening the chunk store with its start-up check (quick, or a full verification after an unclean
stop), and the background filling of whole tracks after their first read.
Concurrency: the choice and the opening run on the main thread before the event loop starts (the
filesystem-type probe has a deadline, since it may touch a dead NAS); `fill_tracks` is a supervised
trio task that reads through the gateways, one track at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import trio

from musicfs.cache.store import ChunkStore, Watermarks
from musicfs.core.config import Config
from musicfs.core.errors import OriginError
from musicfs.core.types import VersionKey
from musicfs.library import Library
from musicfs.origins.fstype import needs_polling
from musicfs.origins.gateway import OriginGateway

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
# A cache disk that takes half the read deadline is no shortcut; shorter than the gateway's own
# deadline, so a hung cache disk turns pass-through before a reader's wait for it ends.
CACHE_DEADLINE_SHARE = 0.5


def cached_origins(config: Config, library: Library) -> set[int]:
    """The ids of the origins whose reads go through the cache."""
    chosen = set()
    for setting, origin in zip(config.origins, library.origins, strict=True):
        wanted = setting.cache
        if wanted is None:
            wanted = setting.remote is not None or _remote(origin.root)
        if wanted:
            chosen.add(origin.origin_id)
            log.info("origin %s: reads are cached in %s", os.fsdecode(origin.root), config.cache_dir)
    return chosen


def _remote(root: bytes) -> bool:
    """needs_polling() with a deadline: a hung NAS counts as remote."""
    answer: list[bool] = []
    probe = threading.Thread(
        target=lambda: answer.append(needs_polling(root)), daemon=True, name="musicfs-fstype"
    )
    probe.start()
    probe.join(PROBE_TIMEOUT)
    return answer[0] if answer else True


def open_cache(config: Config) -> ChunkStore:
    """Open the chunk store and check it: quick normally, every chunk after an unclean stop."""
    store = ChunkStore(
        Path(config.cache_dir),
        watermarks=Watermarks(config.cache_max_mb * 2**20),
        retry_interval=config.cache_retry,
        io_timeout=config.read_timeout * CACHE_DEADLINE_SHARE,
    )
    report = store.check(full=store.unclean)
    usage = store.usage()
    log.info(
        "cache %s: %d chunks, %d MiB, %s; %s check repaired %d",
        config.cache_dir,
        usage.chunks,
        usage.bytes >> 20,
        usage.mode,
        "full" if store.unclean else "quick",
        report.repairs,
    )
    return store


FILL_QUEUE = 256


async def fill_tracks(
    gateways: Mapping[int, OriginGateway], requests: trio.MemoryReceiveChannel[VersionKey]
) -> None:
    """Cache whole tracks after their first read (a supervised task): a track played once plays
    again with its origin gone. One track at a time, so playback reads keep the bandwidth."""
    async for version in requests:
        gateway = gateways[version.origin_id]
        if gateway.offline is not None:
            continue
        try:
            read = await gateway.fill(version)
        except OriginError as exc:
            log.info("could not cache %s whole: %s", os.fsdecode(version.relpath), exc)
            continue
        log.debug("cached %s whole (%d chunks read)", os.fsdecode(version.relpath), read)


SCRUB_EVERY = 60.0
SCRUB_CHUNKS = 16  # 16 MiB a minute: a rate that never competes with playback


async def scrub(store: ChunkStore) -> None:
    """Verify a few cached chunks now and then (a supervised task); a bad one is quarantined and
    read again from the origin when next needed."""
    while True:
        await trio.sleep(SCRUB_EVERY)
        verified, bad = await trio.to_thread.run_sync(store.scrub, SCRUB_CHUNKS, abandon_on_cancel=True)
        if bad:
            log.warning(
                "cache scrub: %d of %d chunks failed verification and were quarantined", bad, verified
            )
