"""The mounted service: the FUSE session, readiness, signals, supervised background work, shutdown.

Owns: the trio side of a running mount. `Service.run` mounts, answers requests until SIGTERM/SIGINT,
`musicfs shutdown` or an external unmount, and unmounts on the way out (2.1, 2.3):
  1. mount with pyfuse3 and start the request loop; its signal receiver takes over from the
     handlers of `musicfs.daemon.signals` and starts the shutdown for a stop signal they recorded
     before it opened (7.5);
  2. READY=1 only once a stat of the mountpoint from a worker thread answers (2.10);
  3. background tasks under the supervisor (2.6): rescans (SIGHUP, `musicfs rescan`, a polling
     timer), the control socket, the watchdog pinger (3.1), the resource check (5.3);
  4. shutdown: STOPPING=1, stop reading new requests, let in-flight ones finish within the drain
     deadline (a second signal cuts it short), cancel the background tasks;
  5. unmount (lazily, so a busy mount never blocks the exit) and return; the caller then waits for
     a running scan, checkpoints and closes the index and releases the lock.
If the request loop crashes instead (an exception escapes it), the mount is left dead rather than
unmounted, and the exception goes on to exit non-zero: a dead mount makes players report an error
(an empty folder would look like an empty library), and the next start, which systemd's
Restart=on-failure brings, cleans it.
Concurrency: everything here runs on the trio thread; blocking work goes to worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from musicfs.cache.store import ChunkStore
from musicfs.core import faults
from musicfs.core.faults import fault_point
from musicfs.core.types import VersionKey
from musicfs.daemon import control, metrics, resources
from musicfs.daemon.caching import FILL_QUEUE, fill_tracks, scrub
from musicfs.daemon.fusemount import mount_fuse
from musicfs.daemon.health import OriginHealth
from musicfs.daemon.notify import Notifier
from musicfs.daemon.recent import RecentProblems
from musicfs.daemon.rescans import Rescans
from musicfs.daemon.signals import FINAL_SHUTDOWN, StopSignals
from musicfs.daemon.supervisor import Supervisor
from musicfs.daemon.watchdog import ping_interval, run_watchdog
from musicfs.daemon.watching import watch_origin
from musicfs.fs.invalidate import invalidate_kernel_cache
from musicfs.fs.operations import XATTR_PID, MusicOperations
from musicfs.fs.stats import STATS
from musicfs.library import Library
from musicfs.origins.gateway import OriginGateway
from musicfs.tree.snapshot import Tree

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
READ_AHEAD_KB = 1024
RESOURCE_CHECK_EVERY = 60.0
# Background tasks stop in this order at shutdown: first what starts new work, the watchdog last.
STOP_ORDER = (
    "watch:*",
    "poll",
    "cache-fill",
    "cache-scrub",
    "health",
    "rescans",
    "resources",
    "control",
    "watchdog",
)
TASK_STOP_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class MountOptions:
    mountpoint: Path
    state_dir: Path
    allow_other: bool
    auto_unmount: bool
    attr_timeout: float
    read_timeout: float
    drain_timeout: float
    poll_interval: float
    health_interval: float
    rescan_at_start: bool
    kernel_listings: bool = False


def fuse_options(options: MountOptions) -> set[str]:
    chosen = {"ro", "fsname=musicfs", "subtype=musicfs", "default_permissions"}
    if options.allow_other:
        chosen.add("allow_other")
    if options.auto_unmount:
        chosen.add("auto_unmount")
    return chosen


class Service:
    """One mounted library, from mount to unmount."""

    def __init__(
        self,
        library: Library,
        options: MountOptions,
        notifier: Notifier,
        signals: StopSignals,
        cache: ChunkStore | None = None,
        cached: Collection[int] = (),
    ) -> None:
        self.library = library
        self.options = options
        self.notifier = notifier
        self.signals = signals
        self.cache = cache
        self.gateways: Mapping[int, OriginGateway] = {
            origin.origin_id: OriginGateway(
                origin, options.read_timeout, cache if origin.origin_id in cached else None
            )
            for origin in library.origins
        }
        for origin_id, why in library.unavailable.items():  # missing or hung at start: EIO at once (7.4)
            self.gateways[origin_id].offline = why
        self.control_socket = options.state_dir / control.SOCKET_NAME
        root_xattrs = {
            XATTR_PID: str(os.getpid()).encode(),
            control.XATTR_CONTROL.encode(): os.fsencode(self.control_socket),
        }
        self.operations = MusicOperations(
            lambda: library.tree,
            self.gateways,
            options.attr_timeout,
            root_xattrs,
            kernel_listings=options.kernel_listings,
        )
        self.supervisor = Supervisor()
        self.rescans = Rescans(library, notifier)
        self.health = OriginHealth(
            self.gateways,
            library.index.count_files,
            self.rescans.request,
            interval=options.health_interval,
            timeout=options.read_timeout,
        )
        self.recent = RecentProblems()
        self.state = "starting"
        self._stopping = False
        self._shutdown_started: float | None = None
        self._drain_logged = False
        self._loop_ended = False
        self._reads_cut: int | None = None  # reads in flight when the drain was cut short
        self._nursery: trio.Nursery | None = None
        library.listeners.append(_invalidate_after_publish)

    def run(self) -> None:
        """Mount, serve until told to stop, unmount. Blocks; returns normally on a clean stop.

        Outside the event loop the handlers of `signals` take the signals; trio's receiver takes them
        over while the loop runs and puts those handlers back when it closes (7.5).
        """
        logging.getLogger().addHandler(self.recent)
        try:
            trio.run(self._serve)
        finally:
            self.signals.phase = FINAL_SHUTDOWN
            logging.getLogger().removeHandler(self.recent)

    async def _serve(self) -> None:
        mountpoint = str(self.options.mountpoint)
        started = time.monotonic()
        mount_fuse(self.operations, mountpoint, fuse_options(self.options))
        log.info("mounted %s", mountpoint)
        crashed = True
        try:
            fault_point("service.mounted")  # the instant before the event loop takes the signals over
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._handle_signals, nursery)
                nursery.start_soon(self._start, started, nursery)
                await pyfuse3.main()
                self._loop_ended = True
                if not self._stopping:
                    log.warning("the mount was removed from outside (fusermount -u?); stopping")
                    self._stopping = True
                self._log_drained()
                nursery.cancel_scope.deadline = trio.current_time() + TASK_STOP_TIMEOUT * len(STOP_ORDER)
                await self.supervisor.stop(STOP_ORDER, TASK_STOP_TIMEOUT)
                nursery.cancel_scope.cancel()
            crashed = False
        finally:
            self.state = "stopping"
            self.signals.phase = FINAL_SHUTDOWN
            self.library.stopping.set()
            self._log_drained(cut=True)
            if crashed:
                # An empty folder would tell players the library is gone; a dead mount (ENOTCONN) says
                # MusicFS is, and the next start (systemd restarts a failed unit) cleans it (2.7).
                log.error(
                    "the request loop crashed: leaving the mount at %s dead (not unmounted, so players "
                    "see an error rather than an empty library); exiting with an error",
                    mountpoint,
                )
                pyfuse3.close(unmount=False)
            else:
                unmount_started = time.monotonic()
                pyfuse3.close(unmount=True)
                log.info(
                    "shutdown: unmounted %s (lazily) in %.3f s",
                    mountpoint,
                    time.monotonic() - unmount_started,
                )

    def _log_drained(self, *, cut: bool = False) -> None:
        if self._shutdown_started is not None and not self._drain_logged:
            self._drain_logged = True
            in_flight = self.operations.reads_in_flight if self._reads_cut is None else self._reads_cut
            log.info(
                "shutdown: request loop %s after %.3f s (%d reads in flight)",
                "cut short" if cut else "stopped",
                time.monotonic() - self._shutdown_started,
                in_flight,
            )

    async def _start(self, started: float, nursery: trio.Nursery) -> None:
        """Wait until the mount answers, announce it, then start the supervised background tasks."""
        root: os.stat_result | None = None
        with trio.move_on_after(READY_TIMEOUT):
            # The stat must come from another thread: this one serves the request it causes.
            root = await trio.to_thread.run_sync(os.stat, self.options.mountpoint, abandon_on_cancel=True)
        if root is None:
            log.error("the mount did not answer within %g s; stopping", READY_TIMEOUT)
            self.begin_shutdown("mount never answered")
            return
        if self._stopping:
            return
        self.state = "ready"
        tree = self.library.tree
        log.info("ready in %.3f s: serving %d files", time.monotonic() - started, tree.file_count)
        self.notifier.send("READY=1", f"STATUS=serving {tree.track_count} tracks")
        fault_point("service.ready")
        _raise_read_ahead(root.st_dev)
        supervise = self.supervisor.start
        supervise(nursery, "rescans", self.rescans.run, critical=True)
        supervise(nursery, "control", self._serve_control, critical=False)
        supervise(nursery, "resources", self._check_resources, critical=False)
        supervise(nursery, "health", self.health.run, critical=False)
        for origin in self.library.origins:
            watch = partial(watch_origin, origin, self.rescans.request, self.options.health_interval)
            supervise(nursery, f"watch:{os.fsdecode(origin.root)}", watch, critical=False)
        if self.cache is not None:
            send, receive = trio.open_memory_channel[VersionKey](FILL_QUEUE)
            for gateway in self.gateways.values():
                gateway.fill_requests = send
            supervise(nursery, "cache-fill", partial(fill_tracks, self.gateways, receive), critical=False)
            supervise(nursery, "cache-scrub", partial(scrub, self.cache), critical=False)
        if self.options.poll_interval > 0:
            supervise(nursery, "poll", lambda: self.rescans.poll(self.options.poll_interval), critical=False)
        interval = ping_interval()
        if interval is not None:
            supervise(
                nursery,
                "watchdog",
                lambda: run_watchdog(self.notifier, interval, self.health_problem),
                critical=False,
            )
        if self.options.rescan_at_start:
            self.rescans.request("start")

    async def health_problem(self) -> str | None:
        """None when healthy; else what is wrong (for the watchdog)."""
        failed = [t.name for t in self.supervisor.failed() if t.critical]
        if failed:
            return f"critical task failed: {', '.join(failed)}"
        with trio.move_on_after(self.options.read_timeout):
            await trio.to_thread.run_sync(os.statvfs, self.options.mountpoint, abandon_on_cancel=True)
            return None
        return f"the mount did not answer a statfs within {self.options.read_timeout:g} s"

    async def _serve_control(self) -> None:
        commands: dict[str, control.Command] = {
            "status": self._status_command,
            "rescan": self._rescan_command,
            "shutdown": self._shutdown_command,
            "metrics": self._metrics_command,
        }
        await control.serve(self.control_socket, commands)

    async def _check_resources(self) -> None:
        while True:
            resources.warn_if_near_limits(resources.measure())
            await trio.sleep(RESOURCE_CHECK_EVERY)

    async def _status_command(self, _request: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.status(await self._cache_usage())

    async def _cache_usage(self) -> dict[str, Any] | None:
        """The cache's figures, read in a worker thread (its database is on the cache disk)."""
        if self.cache is None:
            return None
        with trio.move_on_after(self.options.read_timeout):
            usage = await trio.to_thread.run_sync(self.cache.usage, abandon_on_cancel=True)
            return dataclasses.asdict(usage)
        return {"mode": "pass-through", "reason": "the cache did not answer"}

    async def _rescan_command(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        done = self.rescans.request("musicfs rescan")
        if request.get("wait", True):
            failed_before = self.rescans.failed
            await done.wait()
            return {
                "finished": True,
                "failed": self.rescans.failed > failed_before,
                "tracks": self.library.tree.track_count,
            }
        return {"finished": False}

    async def _shutdown_command(self, _request: Mapping[str, Any]) -> Mapping[str, Any]:
        self.begin_shutdown("musicfs shutdown")
        return {"pid": os.getpid()}

    async def _metrics_command(self, _request: Mapping[str, Any]) -> Mapping[str, Any]:
        offline = self._offline_origins()
        origins = {
            os.fsdecode(g.origin.root): metrics.OriginCounters(
                i not in offline, g.inline_reads, g.thread_reads, g.timeouts
            )
            for i, g in self.gateways.items()
        }
        text = metrics.render(
            STATS,
            self.supervisor.tasks.values(),
            origins,
            self.library.tree.track_count,
            resources.measure(),
            await self._cache_usage(),
        )
        return {"text": text}

    def _offline_origins(self) -> dict[int, str]:
        """Origins the health checks or the last scan found unreachable, with why."""
        offline = dict(self.library.unavailable)
        offline.update({i: why for i, why in self.health.states().items() if why is not None})
        return offline

    def mount_state(self) -> str:
        """starting, ready, degraded (an origin offline or slow, a task failed), offline, stopping."""
        if self.state != "ready":
            return self.state
        offline = self._offline_origins()
        if offline and len(offline) == len(self.library.origins):
            return "offline"
        cache_down = self.cache is not None and self.cache.mode != "ok"
        degraded = offline or self.health.degraded or self.supervisor.failed() or cache_down
        return "degraded" if degraded else "ready"

    def _origin_state(self, origin_id: int, offline: Mapping[int, str]) -> dict[str, str | None]:
        if origin_id in offline:
            return {"state": "offline", "why": offline[origin_id]}
        if origin_id in self.health.degraded:
            return {"state": "degraded", "why": self.health.degraded[origin_id]}
        return {"state": "ok", "why": None}

    def status(self, cache_usage: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything `musicfs status` shows."""
        usage = resources.measure()
        offline = self._offline_origins()
        return {
            "pid": os.getpid(),
            "mountpoint": str(self.options.mountpoint),
            "state": self.mount_state(),
            "tracks": self.library.tree.track_count,
            "origins": [
                {"path": os.fsdecode(o.root), **self._origin_state(o.origin_id, offline)}
                for o in self.library.origins
            ],
            "tasks": [t.as_dict() for t in self.supervisor.tasks.values()],
            "rescans": {"completed": self.rescans.completed, "failed": self.rescans.failed},
            "requests": sum(STATS.requests.values()),
            "request_errors": dict(STATS.failures),
            "reads_in_flight": self.operations.reads_in_flight,
            "open_fds": usage.open_fds,
            "rss_bytes": usage.rss_bytes,
            "fault_point_hits": dict(faults.hits),
            "cache": cache_usage,
            "recent_problems": list(self.recent.records),
        }

    async def _handle_signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            self.signals.phase = "serving"
            if self.signals.received is not None:  # it came before the receiver took over
                self.begin_shutdown(self.signals.received)
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    if not self._stopping:
                        self.rescans.request("SIGHUP")
                elif not self._stopping:
                    self.begin_shutdown(name)
                else:
                    log.warning("%s again during shutdown: cutting the drain short", name)
                    self._cut_drain()

    def begin_shutdown(self, why: str) -> None:
        """Stop taking requests and give in-flight ones until the drain deadline (trio thread only)."""
        if self._stopping:
            return
        self._stopping = True
        self.state = "stopping"
        self._shutdown_started = time.monotonic()
        self.library.stopping.set()
        log.info("shutting down (%s): %d reads in flight", why, self.operations.reads_in_flight)
        self.notifier.send("STOPPING=1", f"STATUS=stopping ({why})")
        pyfuse3.terminate()
        assert self._nursery is not None
        self._nursery.start_soon(self._cut_drain_after, self.options.drain_timeout)

    async def _cut_drain_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self._cut_drain()

    def _cut_drain(self) -> None:
        """End the request loop now, counting the reads it cuts (14: the log must say how many)."""
        if self._loop_ended or self._nursery is None:
            return
        self._reads_cut = self.operations.reads_in_flight
        self._nursery.cancel_scope.cancel()


def _invalidate_after_publish(old: Tree, new: Tree) -> None:
    if len(old) > 1:  # nothing of an empty tree can be in the kernel's caches
        invalidate_kernel_cache(old, new)


def _raise_read_ahead(device: int) -> None:
    """Let the kernel read ahead 1 MiB (instead of 128 KiB): fewer, larger requests. Best effort."""
    path = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
    try:
        with open(path, "w") as handle:
            handle.write(str(READ_AHEAD_KB))
    except OSError as exc:
        log.debug("could not raise read-ahead (%s): %s", path, exc)
