"""The composition root: the order in which a command takes its resources and gives them back.

Owns: `mount`, `scan` and the opening of an instance (`open_instance`): every path inspected within a
deadline and checked for overlaps (nothing is created before), the state directory, then the
instance lock (before anything else is touched, 3.9), then the mountpoint (a stale mount of ours is
cleaned only now), then the index (set aside and rebuilt if damaged, 2.4) and the tree it holds.
`mount` then waits for origins not there or not answering (7.4), opens the cache, runs a first scan
of a new library and serves; a stop signal in any of these phases ends it cleanly (7.5).
Resources are released in reverse order through an ExitStack, whatever happens in between.
Concurrency: runs on the main thread; `Service.run` starts the event loop. The only other threads
here are probes with deadlines and the signal thread (`musicfs.daemon.signals`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from musicfs.core.config import Config
from musicfs.core.faults import fault_point
from musicfs.daemon.caching import cached_origins, open_cache
from musicfs.daemon.lock import InstanceLock
from musicfs.daemon.mounts import clear_stale_mount
from musicfs.daemon.notify import Notifier
from musicfs.daemon.preflight import (
    StartPaths,
    check_mountpoint,
    check_origins,
    check_overlaps,
    inspect,
    prepare_state_dir,
)
from musicfs.daemon.progress import ScanProgress
from musicfs.daemon.service import MountOptions, Service
from musicfs.daemon.signals import FINAL_SHUTDOWN, StopRequested, StopSignals
from musicfs.fs import listings
from musicfs.index.scanner import ScanCancelled, ScanReport
from musicfs.index.schema import INDEX_NAME
from musicfs.index.store import Index
from musicfs.library import Library
from musicfs.origins.local import DOES_NOT_ANSWER, LocalOrigin
from musicfs.sqlite import set_aside

log = logging.getLogger(__name__)

RUNNING_MARKER = "running"  # present while an instance runs: found at start = the last run crashed
QUIESCE_TIMEOUT = 5.0
ORIGIN_WAIT = "the origin wait"
WAIT_LOOK_EVERY = 0.5  # how often the origin wait looks at the origins again
WAIT_TICK = 0.1  # how often it looks for a stop signal


@dataclass(slots=True)
class StepLog:
    """The level at which the steps of closing an instance are logged: DEBUG until a mount served."""

    level: int = logging.DEBUG


@contextmanager
def open_instance(config: Config, steps: StepLog | None = None) -> Iterator[Library]:
    """Check the paths, lock the state directory, check the mountpoint and the origins, open the index
    and load the tree from it; undo all of it on exit, logging each step of the undoing with its
    duration at `steps.level`."""
    steps = steps or StepLog()
    paths = inspect(config)  # every path within a deadline: a frozen NAS must not hang the start (7.4)
    check_overlaps(config, paths)  # before anything is created (paths-overlap)
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
            check_mountpoint(config, paths)
            clear_stale_mount(config.mountpoint)  # only a dead mount of ours is cleaned (2.7)
        library = _open_library(config, paths, stack, steps, deep_check=unclean)
        for origin, found in zip(library.origins, paths.origins, strict=True):
            if not found.answered:  # left to the origin wait of a mount, then served offline
                library.unavailable[origin.origin_id] = f"{os.fsdecode(origin.root)}: {DOES_NOT_ANSWER}"
        stack.callback(_timed, steps, "background scan finished", library.quiesce, QUIESCE_TIMEOUT)
        yield library


def _open_library(
    config: Config, paths: StartPaths, stack: ExitStack, steps: StepLog, *, deep_check: bool
) -> Library:
    """Open the index, check the origins against it and load the tree it holds. An index that turns
    out to be damaged anywhere on the way (2.4) is set aside (one WARNING) and rebuilt by the first
    scan."""
    path = config.state_dir / INDEX_NAME
    try:
        return _load(config, paths, Index(path, deep_check=deep_check), stack, steps)
    except sqlite3.OperationalError:
        raise  # the disk failed (full, I/O error, no permission), not the index: nothing to set aside
    except sqlite3.DatabaseError as exc:
        set_aside(path, "index", f"it is damaged ({exc})")
    return _load(config, paths, Index(path), stack, steps)


def _load(config: Config, paths: StartPaths, index: Index, stack: ExitStack, steps: StepLog) -> Library:
    """A Library on `index` with its tree loaded; the index is closed again if that fails."""
    try:
        library = Library(config, index)
        check_origins(config, paths, lambda path: index.count_files(index.origin_id(os.fsencode(path))) > 0)
        started = time.monotonic()
        tree = library.load()
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            index.close()
        raise
    log.info("index loaded in %.3f s: %d files", time.monotonic() - started, tree.file_count)
    stack.callback(_timed, steps, "index checkpointed and closed", index.close)
    return library


def _timed(steps: StepLog, step: str, action: Callable[..., object], *args: object) -> None:
    started = time.monotonic()
    action(*args)
    log.log(steps.level, "shutdown: %s in %.3f s", step, time.monotonic() - started)


def mount(config: Config, signals: StopSignals) -> None:
    """Mount the library at config.mountpoint and serve it until SIGTERM/SIGINT or an unmount.

    A stop signal before the mount serves (7.5) ends the start-up where it is, with nothing mounted:
    the origin wait at once, the first scan at its next batch boundary (what it committed is kept).
    """
    chosen = listings.choose()  # a bad MUSICFS_LISTINGS is refused before anything is touched
    notifier = Notifier()
    notifier.status("starting")
    steps = StepLog()
    try:
        with open_instance(config, steps) as library, ExitStack() as stack:
            wait_for_origins(library, notifier, config.origin_wait, signals)
            signals.check()
            cached = cached_origins(config, library)
            cache = open_cache(config) if cached else None
            if cache is not None:
                stack.callback(_timed, steps, "cache closed", cache.close)
            signals.check()
            first_scan = library.tree.file_count == 0
            if first_scan:
                signals.phase = "the first scan"
                signals.on_stop(library.stopping.set)
                signals.check()
                notifier.status("first scan of the library")
                scan(library, notifier)
            signals.phase = "mounting"
            signals.check()
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
                kernel_listings=chosen.kernel,
            )
            steps.level = logging.INFO
            log.info("%s", chosen.describe())
            Service(library, options, notifier, signals, cache, cached).run()
            signals.phase = FINAL_SHUTDOWN
            fault_point("shutdown.final")
    except ScanCancelled:
        log.info(
            "stopped during the first scan (%s): what it indexed is kept, the next start resumes",
            signals.received,
        )
        return
    except StopRequested as stop:
        log.info("stopped %s (%s); nothing was mounted", _during(signals.phase), stop)
        return
    log.info("stopped cleanly")


def _during(phase: str) -> str:
    return "while waiting for origins" if phase == ORIGIN_WAIT else f"during {phase}"


def wait_for_origins(library: Library, notifier: Notifier, bound: float, signals: StopSignals) -> None:
    """Give origins that are not there yet (a NAS still mounting) or do not answer (a frozen NAS, found
    by the preflight: already in `library.unavailable`) up to `bound` seconds; those still missing
    then are served offline: their reads fail at once with EIO (7.4). Ends at once on a stop signal."""
    deadline = time.monotonic() + bound
    reasons = {
        o.origin_id: library.unavailable.get(o.origin_id) or _unavailable(library, o) for o in library.origins
    }
    waiting = [o for o in library.origins if reasons[o.origin_id] is not None]
    if not waiting:
        return
    signals.phase = ORIGIN_WAIT
    for origin in waiting:
        if _hung(reasons[origin.origin_id]):
            log.warning("origin %s does not answer; waiting up to %g s", os.fsdecode(origin.root), bound)
        else:
            log.info("waiting up to %g s for origin %s", bound, os.fsdecode(origin.root))
    next_look = time.monotonic()
    while waiting and time.monotonic() < deadline:
        signals.check()
        if time.monotonic() >= next_look:
            notifier.send(
                f"EXTEND_TIMEOUT_USEC={int((bound + 10) * 1e6)}",
                f"STATUS=waiting for {len(waiting)} origin(s) to appear",
            )
            reasons.update((o.origin_id, _unavailable(library, o)) for o in waiting)
            waiting = [o for o in waiting if reasons[o.origin_id] is not None]
            next_look = time.monotonic() + WAIT_LOOK_EVERY
        time.sleep(WAIT_TICK)
    for origin in library.origins:
        if origin not in waiting:
            library.unavailable.pop(origin.origin_id, None)
            continue
        library.unavailable[origin.origin_id] = reasons[origin.origin_id] or DOES_NOT_ANSWER
        name = os.fsdecode(origin.root)
        verb = "answer" if _hung(reasons[origin.origin_id]) else "appear"
        log.warning("origin %s did not %s within %g s; serving it offline", name, verb, bound)
    signals.phase = "start-up"


def _hung(reason: str | None) -> bool:
    return reason is not None and DOES_NOT_ANSWER in reason


def _unavailable(library: Library, origin: LocalOrigin) -> str | None:
    knows_files = library.index.count_files(origin.origin_id) > 0
    return origin.unavailable_reason(knows_files=knows_files, timeout=WAIT_LOOK_EVERY)


def scan(library: Library, notifier: Notifier | None = None) -> list[ScanReport]:
    """Rescan every origin with a progress bar on a terminal (plain lines otherwise)."""
    with ScanProgress(sys.stderr, notifier) as progress:
        return library.rescan(progress)
