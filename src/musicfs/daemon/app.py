"""The composition root: every component of a mount is built here, in one place, from a `Config`.

Owns: `mount` and `assemble`, the one function a newcomer reads to see the whole house. In order:
every path inspected within a deadline and checked for overlaps (nothing is created before), the
state directory, the instance lock (before anything else is touched, 3.9), the mountpoint (a stale
mount of ours is cleaned only now), the index (set aside and rebuilt if damaged, 2.4), the library
and the tree it holds; then the wait for origins not there or not answering (7.4), the cache, the
first scan of a new library; then the parts that serve: gateways, FUSE operations, rescans, health
checks, and the `Service` that runs them. Each object is given what it depends on when it is built;
the shared state has one home each (`OriginStates` for origin health, `Lifecycle` for stopping).
Every resource goes on one ExitStack and is released in reverse order, each step logged with its
duration; a stop signal in any start-up phase ends it cleanly (7.5). `open_instance` is the first
half alone, for `musicfs scan` and `musicfs tree`.
How origins are built is a parameter (`wrap_origin`): the chaos launcher passes one that injects
faults; `musicfs mount` never does.
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

import trio

from musicfs.core.config import Config
from musicfs.core.faults import fault_point
from musicfs.core.types import VersionKey
from musicfs.daemon import control, resources
from musicfs.daemon.caching import FILL_QUEUE, cached_origins, open_cache
from musicfs.daemon.health import OriginHealth
from musicfs.daemon.lifecycle import Lifecycle
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
from musicfs.daemon.progress import Progress
from musicfs.daemon.rescans import Rescans
from musicfs.daemon.service import Parts, Service
from musicfs.daemon.signals import FINAL_SHUTDOWN, StopRequested, StopSignals
from musicfs.fs import listings
from musicfs.fs.invalidate import invalidate_kernel_cache
from musicfs.fs.operations import XATTR_PID, MusicOperations
from musicfs.index.scanner import ScanCancelled, ScanReport
from musicfs.index.schema import INDEX_NAME
from musicfs.index.store import Index
from musicfs.library import Library, OriginWrapper
from musicfs.origins.base import DOES_NOT_ANSWER, Origin
from musicfs.origins.gateway import OriginGateway
from musicfs.origins.states import OriginStates
from musicfs.sqlite import set_aside
from musicfs.tags.pictures import decoded_front_cover
from musicfs.tree.snapshot import Tree

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


def as_built(origin: Origin) -> Origin:
    """Origins as they are (what every command but the chaos launcher's uses)."""
    return origin


@contextmanager
def open_instance(config: Config, wrap_origin: OriginWrapper = as_built) -> Iterator[Library]:
    """The first half of `assemble` alone (for `musicfs scan` and `musicfs tree`): the library of
    `config`, its index open and its tree loaded; all of it undone on exit."""
    with ExitStack() as stack:
        yield _open_instance(config, stack, StepLog(), Lifecycle(), OriginStates(), wrap_origin)


def _open_instance(
    config: Config,
    stack: ExitStack,
    steps: StepLog,
    lifecycle: Lifecycle,
    states: OriginStates,
    wrap_origin: OriginWrapper,
) -> Library:
    """Check the paths, lock the state directory, check the mountpoint and the origins, open the index
    and load the tree from it; each undoing step goes on `stack`, logged with its duration."""
    paths = inspect(config)  # every path within a deadline: a frozen NAS must not hang the start (7.4)
    check_overlaps(config, paths)  # before anything is created (paths-overlap)
    prepare_state_dir(config.state_dir)
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

    def build(index: Index) -> Library:
        return Library(config, index, states=states, stopping=lifecycle.stopping, wrap_origin=wrap_origin)

    library = _open_library(config, paths, build, stack, steps, deep_check=unclean)
    for origin, found in zip(library.origins, paths.origins, strict=True):
        if found is not None and not found.answered:  # left to the origin wait, then served offline
            states.set_offline(origin.origin_id, f"{os.fsdecode(origin.root)}: {DOES_NOT_ANSWER}")
    stack.callback(_timed, steps, "background scan finished", library.quiesce, QUIESCE_TIMEOUT)
    return library


def _open_library(
    config: Config,
    paths: StartPaths,
    build: Callable[[Index], Library],
    stack: ExitStack,
    steps: StepLog,
    *,
    deep_check: bool,
) -> Library:
    """Open the index, check the origins against it and load the tree it holds. An index that turns
    out to be damaged anywhere on the way (2.4) is set aside (one WARNING) and rebuilt by the first
    scan."""
    path = config.state_dir / INDEX_NAME
    try:
        return _load(config, paths, build(Index(path, deep_check=deep_check)), stack, steps)
    except sqlite3.OperationalError:
        raise  # the disk failed (full, I/O error, no permission), not the index: nothing to set aside
    except sqlite3.DatabaseError as exc:
        set_aside(path, "index", f"it is damaged ({exc})")
    return _load(config, paths, build(Index(path)), stack, steps)


def _load(config: Config, paths: StartPaths, library: Library, stack: ExitStack, steps: StepLog) -> Library:
    """`library` with its tree loaded; its index is closed again if that fails."""
    index = library.index
    try:
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


def mount(config: Config, signals: StopSignals, wrap_origin: OriginWrapper = as_built) -> None:
    """Mount the library at config.mountpoint and serve it until SIGTERM/SIGINT or an unmount.

    A stop signal before the mount serves (7.5) ends the start-up where it is, with nothing mounted:
    the origin wait at once, the first scan at its next batch boundary (what it committed is kept).
    """
    notifier = Notifier()
    notifier.status("starting")
    steps = StepLog()
    try:
        with ExitStack() as stack:
            service = assemble(config, stack, steps, notifier, signals, wrap_origin)
            resources.log_limits()  # once the start passed its checks: a user error stays one line
            steps.level = logging.INFO
            service.run()
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


def assemble(
    config: Config,
    stack: ExitStack,
    steps: StepLog,
    notifier: Notifier,
    signals: StopSignals,
    wrap_origin: OriginWrapper = as_built,
) -> Service:
    """Build every component of a mount of `config`, in order (see the module docstring); what must be
    undone goes on `stack`. Raises StopRequested or ScanCancelled when a stop signal comes first."""
    assert config.mountpoint is not None
    chosen = listings.choose()  # a bad MUSICFS_LISTINGS is refused before anything is touched
    lifecycle = Lifecycle()
    states = OriginStates()
    library = _open_instance(config, stack, steps, lifecycle, states, wrap_origin)
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
        signals.on_stop(lifecycle.request_stop)
        signals.check()
        notifier.status("first scan of the library")
        scan(library, notifier)
    signals.phase = "mounting"
    signals.check()

    fill_send, fill_receive = (
        trio.open_memory_channel[VersionKey](FILL_QUEUE) if cache is not None else (None, None)
    )
    gateways = {
        o.origin_id: OriginGateway(
            o,
            config.read_timeout,
            cache if o.origin_id in cached else None,
            states=states,
            fill_requests=fill_send if o.origin_id in cached else None,
        )
        for o in library.origins
    }
    control_socket = config.state_dir / control.SOCKET_NAME
    root_xattrs = {
        XATTR_PID: str(os.getpid()).encode(),
        control.XATTR_CONTROL.encode(): os.fsencode(control_socket),
    }
    operations = MusicOperations(
        lambda: library.tree,
        gateways,
        config.attr_timeout,
        root_xattrs,
        kernel_listings=chosen.kernel,
        decode_picture=decoded_front_cover,
    )
    log.info("%s", chosen.describe())
    rescans = Rescans(library, notifier)
    health = OriginHealth(
        gateways,
        states,
        library.index.count_files,
        rescans.request,
        interval=config.health_interval,
        timeout=config.read_timeout,
    )
    library.listeners.append(_invalidate_after_publish)  # from now on the kernel's caches follow the tree
    return Service(
        Parts(
            config=config,
            mountpoint=config.mountpoint,
            lifecycle=lifecycle,
            notifier=notifier,
            signals=signals,
            library=library,
            states=states,
            cache=cache,
            gateways=gateways,
            fill_queue=fill_receive,
            operations=operations,
            rescans=rescans,
            health=health,
            control_socket=control_socket,
            rescan_at_start=not first_scan,
        )
    )


def _invalidate_after_publish(old: Tree, new: Tree) -> None:
    if len(old) > 1:  # nothing of an empty tree can be in the kernel's caches
        invalidate_kernel_cache(old, new)


def _during(phase: str) -> str:
    return "while waiting for origins" if phase == ORIGIN_WAIT else f"during {phase}"


def wait_for_origins(library: Library, notifier: Notifier, bound: float, signals: StopSignals) -> None:
    """Give origins that are not there yet (a NAS still mounting) or do not answer (a frozen NAS, found
    by the preflight: already offline in `library.states`) up to `bound` seconds; those still missing
    then are served offline: their reads fail at once with EIO (7.4). Ends at once on a stop signal."""
    deadline = time.monotonic() + bound
    reasons = {
        o.origin_id: library.states.offline_reason(o.origin_id) or _unavailable(library, o)
        for o in library.origins
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
            library.states.set_online(origin.origin_id)
            continue
        library.states.set_offline(origin.origin_id, reasons[origin.origin_id] or DOES_NOT_ANSWER)
        name = os.fsdecode(origin.root)
        verb = "answer" if _hung(reasons[origin.origin_id]) else "appear"
        log.warning("origin %s did not %s within %g s; serving it offline", name, verb, bound)
    signals.phase = "start-up"


def _hung(reason: str | None) -> bool:
    return reason is not None and DOES_NOT_ANSWER in reason


def _unavailable(library: Library, origin: Origin) -> str | None:
    knows_files = library.index.count_files(origin.origin_id) > 0
    return origin.unavailable_reason(knows_files=knows_files, timeout=WAIT_LOOK_EVERY)


def scan(library: Library, notifier: Notifier | None = None) -> list[ScanReport]:
    """Rescan every origin with a progress bar on a terminal (plain lines otherwise)."""
    with Progress(sys.stderr, "scanning", "file", notifier) as progress:
        return library.rescan(progress)
