"""The mounted service: the FUSE session, readiness, signals, background rescans and shutdown.

Owns: the trio side of a running mount. `serve` mounts, answers requests until SIGTERM/SIGINT (or an
external unmount), and always unmounts on the way out, whatever happened (2.1):
  1. mount with pyfuse3 and start the request loop;
  2. READY=1 only once a stat of the mountpoint from a worker thread answers (2.10);
  3. SIGHUP: rescan in the background; the published tree changes with one swap;
  4. first SIGTERM/SIGINT: STOPPING=1, stop reading new requests, let in-flight ones finish within
     `drain_timeout`; a second signal cuts the wait short;
  5. unmount (lazily, so a busy mount never blocks the exit) and return.
Concurrency: everything here runs on the trio thread; blocking work (scans, the readiness stat) goes
to worker threads.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from musicfs.daemon.notify import Notifier
from musicfs.fs.invalidate import invalidate_kernel_cache
from musicfs.fs.operations import MusicOperations
from musicfs.index.scanner import ScanCancelled
from musicfs.library import Library
from musicfs.origins.gateway import OriginGateway
from musicfs.tree.snapshot import Tree

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 5.0
READ_AHEAD_KB = 1024


@dataclass(frozen=True, slots=True)
class MountOptions:
    mountpoint: Path
    allow_other: bool
    auto_unmount: bool
    attr_timeout: float
    read_timeout: float
    rescan_at_start: bool


def fuse_options(options: MountOptions) -> set[str]:
    chosen = {"ro", "fsname=musicfs", "subtype=musicfs", "default_permissions"}
    if options.allow_other:
        chosen.add("allow_other")
    if options.auto_unmount:
        chosen.add("auto_unmount")
    return chosen


class Service:
    """One mounted library, from mount to unmount."""

    def __init__(self, library: Library, options: MountOptions, notifier: Notifier) -> None:
        self.library = library
        self.options = options
        self.notifier = notifier
        self.gateways: Mapping[int, OriginGateway] = {
            origin.origin_id: OriginGateway(origin, options.read_timeout) for origin in library.origins
        }
        self.operations = MusicOperations(lambda: library.tree, self.gateways, options.attr_timeout)
        self._stopping = False
        self._shutdown_started: float | None = None
        library.listeners.append(_invalidate_after_publish)

    def run(self) -> None:
        """Mount, serve until told to stop, unmount. Blocks; returns normally on a clean stop."""
        trio.run(self._serve)

    async def _serve(self) -> None:
        mountpoint = str(self.options.mountpoint)
        started = time.monotonic()
        pyfuse3.init(self.operations, mountpoint, fuse_options(self.options))
        log.info("mounted %s", mountpoint)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._handle_signals, nursery)
                nursery.start_soon(self._announce_ready, started, nursery)
                await pyfuse3.main()
                if not self._stopping:
                    log.warning("the mount was removed from outside (fusermount -u?); stopping")
                nursery.cancel_scope.cancel()
        finally:
            self.library.stopping.set()
            if self._shutdown_started is not None:
                log.info(
                    "shutdown: request loop stopped after %.3f s (%d reads cut short)",
                    time.monotonic() - self._shutdown_started,
                    self.operations.reads_in_flight,
                )
            unmount_started = time.monotonic()
            pyfuse3.close(unmount=True)
            log.info(
                "shutdown: unmounted %s (lazily) in %.3f s", mountpoint, time.monotonic() - unmount_started
            )

    async def _announce_ready(self, started: float, nursery: trio.Nursery) -> None:
        mountpoint = self.options.mountpoint
        with trio.move_on_after(READY_TIMEOUT):
            # The stat must come from another thread: this one serves the request it causes.
            root = await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
            tree = self.library.tree
            log.info("ready in %.3f s: serving %d files", time.monotonic() - started, tree.file_count)
            self.notifier.send("READY=1", f"STATUS=serving {tree.file_count} tracks")
            _raise_read_ahead(root.st_dev)
            if self.options.rescan_at_start:
                nursery.start_soon(self._rescan, "start")
            return
        log.error("the mount did not answer within %g s; stopping", READY_TIMEOUT)
        self._begin_shutdown(nursery.cancel_scope, "mount never answered")

    async def _rescan(self, why: str) -> None:
        log.info("rescan (%s) started", why)
        self.notifier.status("rescanning")
        try:
            await trio.to_thread.run_sync(self.library.rescan, abandon_on_cancel=True)
        except ScanCancelled:
            log.info("rescan (%s) stopped for shutdown; what it committed is kept", why)
        except Exception:
            log.exception("rescan (%s) failed; still serving the last complete tree", why)
        else:
            log.info("rescan (%s) finished: serving %d files", why, self.library.tree.file_count)
        self.notifier.status(f"serving {self.library.tree.file_count} tracks")

    async def _handle_signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    if not self._stopping:
                        nursery.start_soon(self._rescan, "SIGHUP")
                elif not self._stopping:
                    self._begin_shutdown(nursery.cancel_scope, name)
                else:
                    log.warning("%s again during shutdown: cutting the drain short", name)
                    nursery.cancel_scope.cancel()

    def _begin_shutdown(self, scope: trio.CancelScope, why: str) -> None:
        self._stopping = True
        self._shutdown_started = time.monotonic()
        self.library.stopping.set()
        log.info("shutting down (%s): %d reads in flight", why, self.operations.reads_in_flight)
        self.notifier.send("STOPPING=1", f"STATUS=stopping ({why})")
        pyfuse3.terminate()
        scope.deadline = min(scope.deadline, trio.current_time() + DRAIN_TIMEOUT)


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
