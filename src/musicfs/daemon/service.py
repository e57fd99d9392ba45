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
The parts it serves with (`Parts`: gateways, operations, health checks, rescans, cache, the shared
origin states and lifecycle) are built by the composition root, `musicfs.daemon.app.assemble`; the
service only runs them. What `musicfs status` shows is put together by `musicfs.daemon.status`.
Concurrency: everything here runs on the trio thread; blocking work goes to worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from musicfs.cache.store import ChunkStore
from musicfs.core.config import Config
from musicfs.core.faults import fault_point
from musicfs.core.types import VersionKey
from musicfs.daemon import control, metrics, resources
from musicfs.daemon import status as status_view
from musicfs.daemon.caching import fill_tracks, scrub
from musicfs.daemon.fusemount import mount_fuse
from musicfs.daemon.health import OriginHealth
from musicfs.daemon.lifecycle import Lifecycle
from musicfs.daemon.notify import Notifier
from musicfs.daemon.recent import RecentProblems
from musicfs.daemon.rescans import Rescans
from musicfs.daemon.signals import FINAL_SHUTDOWN, StopSignals, started_at_terminal, terminal_gone
from musicfs.daemon.supervisor import Supervisor
from musicfs.daemon.terminal import stop_hint
from musicfs.daemon.watchdog import ping_interval, run_watchdog
from musicfs.daemon.watching import watch_origin
from musicfs.fs.operations import MusicOperations
from musicfs.fs.stats import STATS
from musicfs.library import Library
from musicfs.origins.gateway import OriginGateway
from musicfs.origins.states import OriginStates

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
class Parts:
    """Everything a mount serves with, built by the composition root (`musicfs.daemon.app.assemble`)."""

    config: Config
    mountpoint: Path
    lifecycle: Lifecycle
    notifier: Notifier
    signals: StopSignals
    library: Library
    states: OriginStates
    cache: ChunkStore | None
    gateways: Mapping[int, OriginGateway]
    fill_queue: trio.MemoryReceiveChannel[VersionKey] | None  # tracks to cache whole (cache only)
    operations: MusicOperations
    rescans: Rescans
    health: OriginHealth
    control_socket: Path
    rescan_at_start: bool
    kernel_listings: bool = False


def fuse_options(config: Config) -> set[str]:
    chosen = {"ro", "fsname=musicfs", "subtype=musicfs", "default_permissions"}
    if config.allow_other:
        chosen.add("allow_other")
    if config.auto_unmount:
        chosen.add("auto_unmount")
    return chosen


class Service:
    """One mounted library, from mount to unmount."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.config = parts.config
        self.library = parts.library
        self.lifecycle = parts.lifecycle
        self.notifier = parts.notifier
        self.signals = parts.signals
        self.operations = parts.operations
        self.rescans = parts.rescans
        self.supervisor = Supervisor()
        self.recent = RecentProblems()
        self._shutdown_started: float | None = None
        self._drain_logged = False
        self._loop_ended = False
        self._reads_cut: int | None = None  # reads in flight when the drain was cut short
        self._nursery: trio.Nursery | None = None
        self._terminal_fd = started_at_terminal()  # SIGHUP there: the window closed (stop)

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
        mountpoint = str(self.parts.mountpoint)
        started = time.monotonic()
        mount_fuse(self.operations, mountpoint, fuse_options(self.config))
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
                if not self.lifecycle.is_stopping:
                    log.warning("the mount was removed from outside (fusermount -u?); stopping")
                    self.lifecycle.request_stop()
                self._log_drained()
                nursery.cancel_scope.deadline = trio.current_time() + TASK_STOP_TIMEOUT * len(STOP_ORDER)
                await self.supervisor.stop(STOP_ORDER, TASK_STOP_TIMEOUT)
                nursery.cancel_scope.cancel()
            crashed = False
        finally:
            self.lifecycle.request_stop()
            self.signals.phase = FINAL_SHUTDOWN
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
                "shutdown: request loop %s in %.3f s (%d reads in flight)",
                "cut short" if cut else "stopped",
                time.monotonic() - self._shutdown_started,
                in_flight,
            )

    async def _start(self, started: float, nursery: trio.Nursery) -> None:
        """Wait until the mount answers, announce it, then start the supervised background tasks."""
        root: os.stat_result | None = None
        with trio.move_on_after(READY_TIMEOUT):
            # The stat must come from another thread: this one serves the request it causes.
            root = await trio.to_thread.run_sync(os.stat, self.parts.mountpoint, abandon_on_cancel=True)
        if root is None:
            log.error("the mount did not answer within %g s; stopping", READY_TIMEOUT)
            self.begin_shutdown("mount never answered")
            return
        if self.lifecycle.is_stopping:
            return
        self.lifecycle.mark_ready()
        tree = self.library.tree
        log.info(
            "ready in %.3f s: serving %d tracks at %s",
            time.monotonic() - started,
            tree.track_count,
            self.parts.mountpoint,
        )
        log.info("%s", stop_hint(self.parts.mountpoint))
        self.notifier.send("READY=1", f"STATUS=serving {tree.track_count} tracks")
        fault_point("service.ready")
        _raise_read_ahead(root.st_dev)
        supervise = self.supervisor.start
        supervise(nursery, "rescans", self.rescans.run, critical=True)
        supervise(nursery, "control", self._serve_control, critical=False)
        supervise(nursery, "resources", self._check_resources, critical=False)
        supervise(nursery, "health", self.parts.health.run, critical=False)
        for setting, origin in zip(self.config.origins, self.library.origins, strict=True):
            if setting.remote is not None:
                log.info("origin %s is remote: changes are found by polling", os.fsdecode(origin.root))
                continue
            watch = partial(watch_origin, origin, self.rescans.request, self.config.health_interval)
            supervise(nursery, f"watch:{os.fsdecode(origin.root)}", watch, critical=False)
        if self.parts.cache is not None and self.parts.fill_queue is not None:
            fill = partial(fill_tracks, self.parts.gateways, self.parts.fill_queue)
            supervise(nursery, "cache-fill", fill, critical=False)
            supervise(nursery, "cache-scrub", partial(scrub, self.parts.cache), critical=False)
        if self.config.poll_interval > 0:
            supervise(nursery, "poll", lambda: self.rescans.poll(self.config.poll_interval), critical=False)
        interval = ping_interval()
        if interval is not None:
            supervise(
                nursery,
                "watchdog",
                lambda: run_watchdog(self.notifier, interval, self.health_problem),
                critical=False,
            )
        if self.parts.rescan_at_start:
            self.rescans.request("start")

    async def health_problem(self) -> str | None:
        """None when healthy; else what is wrong (for the watchdog)."""
        failed = self.supervisor.critical_failures()
        if failed:
            return f"critical task failed: {', '.join(failed)}"
        with trio.move_on_after(self.config.read_timeout):
            await trio.to_thread.run_sync(os.statvfs, self.parts.mountpoint, abandon_on_cancel=True)
            return None
        return f"the mount did not answer a statfs within {self.config.read_timeout:g} s"

    async def _serve_control(self) -> None:
        commands: dict[str, control.Command] = {
            "status": self._status_command,
            "rescan": self._rescan_command,
            "shutdown": self._shutdown_command,
            "metrics": self._metrics_command,
        }
        await control.serve(self.parts.control_socket, commands)

    async def _check_resources(self) -> None:
        while True:
            resources.warn_if_near_limits(resources.measure())
            await trio.sleep(RESOURCE_CHECK_EVERY)

    async def _status_command(self, _request: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.status(await self._cache_usage())

    async def _cache_usage(self) -> dict[str, Any] | None:
        """The cache's figures, read in a worker thread (its database is on the cache disk)."""
        cache = self.parts.cache
        if cache is None:
            return None
        with trio.move_on_after(self.config.read_timeout):
            usage = await trio.to_thread.run_sync(cache.usage, abandon_on_cancel=True)
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
        offline = self.parts.states.offline()
        origins = {
            os.fsdecode(g.origin.root): metrics.OriginCounters(
                i not in offline, g.inline_reads, g.thread_reads, g.timeouts
            )
            for i, g in self.parts.gateways.items()
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

    def mount_state(self) -> str:
        """starting, ready, degraded (an origin offline or slow, a task failed), offline, stopping."""
        return status_view.mount_state(self._view())

    def status(self, cache_usage: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything `musicfs status` shows."""
        return status_view.status(self._view(), cache_usage, self.recent.records)

    def _view(self) -> status_view.StatusInputs:
        return status_view.StatusInputs(
            pid=os.getpid(),
            mountpoint=self.parts.mountpoint,
            lifecycle=self.lifecycle.state,
            origins=[(o.origin_id, o.root) for o in self.library.origins],
            states=self.parts.states,
            tree=self.library.tree,
            tasks=list(self.supervisor.tasks.values()),
            failed_tasks=bool(self.supervisor.failed()),
            cache_mode=None if self.parts.cache is None else self.parts.cache.mode,
            rescans=(self.rescans.completed, self.rescans.failed),
            reads_in_flight=self.operations.reads_in_flight,
        )

    async def _handle_signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            self.signals.phase = "serving"
            if self.signals.received is not None:  # it came before the receiver took over
                self.begin_shutdown(self.signals.received)
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP and terminal_gone(self._terminal_fd):
                    self.begin_shutdown("SIGHUP: the terminal closed")
                elif signum == signal.SIGHUP:
                    if not self.lifecycle.is_stopping:
                        self.rescans.request("SIGHUP")
                elif self._shutdown_started is None and not self._loop_ended:
                    self.begin_shutdown(name)
                else:
                    log.warning("%s again during shutdown: cutting the drain short", name)
                    self._cut_drain()

    def begin_shutdown(self, why: str) -> None:
        """Stop taking requests and give in-flight ones until the drain deadline (trio thread only)."""
        if self._shutdown_started is not None or self._loop_ended:
            return
        self._shutdown_started = time.monotonic()
        self.lifecycle.request_stop()
        log.info("shutting down (%s): %d reads in flight", why, self.operations.reads_in_flight)
        self.notifier.send("STOPPING=1", f"STATUS=stopping ({why})")
        pyfuse3.terminate()
        assert self._nursery is not None
        self._nursery.start_soon(self._cut_drain_after, self.config.drain_timeout)

    async def _cut_drain_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self._cut_drain()

    def _cut_drain(self) -> None:
        """End the request loop now, counting the reads it cuts (14: the log must say how many)."""
        if self._loop_ended or self._nursery is None:
            return
        self._reads_cut = self.operations.reads_in_flight
        self._nursery.cancel_scope.cancel()


def _raise_read_ahead(device: int) -> None:
    """Let the kernel read ahead 1 MiB (instead of 128 KiB): fewer, larger requests. Best effort."""
    path = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
    try:
        with open(path, "w") as handle:
            handle.write(str(READ_AHEAD_KB))
    except OSError as exc:
        log.debug("could not raise read-ahead (%s): %s", path, exc)
