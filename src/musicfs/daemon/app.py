"""The composition root: the order in which a command takes its resources and gives them back.

Owns: `mount`, `scan` and the opening of an instance (`open_instance`): state directory, then the
instance lock (before anything else is touched, 3.9), then the mountpoint (a stale mount is cleaned
only now), then the index. Resources are released in reverse order through an ExitStack, whatever
happens in between.
Concurrency: runs on the main thread; `Service.run` starts the event loop.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from musicfs.core.config import Config
from musicfs.daemon.caching import cached_origins, open_cache
from musicfs.daemon.lock import InstanceLock
from musicfs.daemon.mounts import clear_stale_mount
from musicfs.daemon.notify import Notifier
from musicfs.daemon.preflight import check_mountpoint, check_origins, prepare_state_dir
from musicfs.daemon.progress import ScanProgress
from musicfs.daemon.service import MountOptions, Service
from musicfs.index.scanner import ScanReport
from musicfs.index.schema import INDEX_NAME
from musicfs.index.store import Index
from musicfs.library import Library
from musicfs.origins.local import LocalOrigin

log = logging.getLogger(__name__)

RUNNING_MARKER = "running"  # present while an instance runs: found at start = the last run crashed
QUIESCE_TIMEOUT = 5.0


@dataclass(slots=True)
class StepLog:
    """The level at which the steps of closing an instance are logged: DEBUG until a mount served."""

    level: int = logging.DEBUG


@contextmanager
def open_instance(config: Config, steps: StepLog | None = None) -> Iterator[Library]:
    """Lock the state directory, check the mountpoint and the origins, open the index; undo all of it
    on exit, logging each step of the undoing with its duration at `steps.level`."""
    steps = steps or StepLog()
    prepare_state_dir(config.state_dir)
    with ExitStack() as stack:
        lock = InstanceLock(config.state_dir)
        lock.acquire()
        stack.callback(_timed, steps, "instance lock released", lock.release)
        marker = config.state_dir / RUNNING_MARKER
        unclean = marker.exists()
        if unclean:
            log.warning("the last run did not stop cleanly; checking the index before using it")
        marker.touch()
        stack.callback(_timed, steps, "clean-stop marker removed", marker.unlink, True)
        if config.mountpoint is not None:
            check_mountpoint(config)
        index = Index(config.state_dir / INDEX_NAME, quick_check=unclean)
        stack.callback(_timed, steps, "index checkpointed and closed", index.close)
        check_origins(config, lambda path: index.count_files(index.origin_id(os.fsencode(path))) > 0)
        if config.mountpoint is not None:
            clear_stale_mount(config.mountpoint)
        library = Library(config, index)
        stack.callback(_timed, steps, "background scan finished", library.quiesce, QUIESCE_TIMEOUT)
        yield library


def _timed(steps: StepLog, step: str, action: Callable[..., object], *args: object) -> None:
    started = time.monotonic()
    action(*args)
    log.log(steps.level, "shutdown: %s in %.3f s", step, time.monotonic() - started)


def mount(config: Config) -> None:
    """Mount the library at config.mountpoint and serve it until SIGTERM/SIGINT or an unmount."""
    notifier = Notifier()
    notifier.status("starting")
    steps = StepLog()
    with open_instance(config, steps) as library, ExitStack() as stack:
        wait_for_origins(library, notifier, config.origin_wait)
        cached = cached_origins(config, library)
        cache = open_cache(config) if cached else None
        if cache is not None:
            stack.callback(_timed, steps, "cache closed", cache.close)
        notifier.status("loading the index")
        started = time.monotonic()
        tree = library.load()
        log.info("index loaded in %.3f s: %d files", time.monotonic() - started, tree.file_count)
        first_scan = tree.file_count == 0
        if first_scan:
            notifier.status("first scan of the library")
            scan(library, notifier)
        assert config.mountpoint is not None
        options = MountOptions(
            mountpoint=config.mountpoint,
            state_dir=config.state_dir,
            allow_other=config.allow_other,
            auto_unmount=config.auto_unmount,
            attr_timeout=config.attr_timeout,
            read_timeout=config.read_timeout,
            drain_timeout=config.drain_timeout,
            poll_interval=config.poll_interval,
            health_interval=config.health_interval,
            rescan_at_start=not first_scan,
        )
        steps.level = logging.INFO
        Service(library, options, notifier, cache, cached).run()
    log.info("stopped cleanly")


def wait_for_origins(library: Library, notifier: Notifier, bound: float) -> None:
    """Give origins that are not there yet (a NAS still mounting) up to `bound` seconds to appear."""
    deadline = time.monotonic() + bound
    waiting = [o for o in library.origins if not _present(library, o)]
    for origin in waiting:
        log.info("waiting up to %g s for origin %s", bound, os.fsdecode(origin.root))
    while waiting and time.monotonic() < deadline:
        notifier.send(
            f"EXTEND_TIMEOUT_USEC={int((bound + 10) * 1e6)}",
            f"STATUS=waiting for {len(waiting)} origin(s) to appear",
        )
        time.sleep(min(0.5, bound))
        waiting = [o for o in waiting if not _present(library, o)]
    for origin in waiting:
        log.warning(
            "origin %s did not appear within %g s; serving it offline", os.fsdecode(origin.root), bound
        )


def _present(library: Library, origin: LocalOrigin) -> bool:
    return origin.unavailable_reason(knows_files=library.index.count_files(origin.origin_id) > 0) is None


def scan(library: Library, notifier: Notifier | None = None) -> list[ScanReport]:
    """Rescan every origin with a progress bar on a terminal (plain lines otherwise)."""
    with ScanProgress(sys.stderr, notifier) as progress:
        return library.rescan(progress)
