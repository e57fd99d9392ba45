"""Rescans on demand and on a timer, one at a time, as a supervised background task.

Owns: the queue of rescan requests (SIGHUP, `musicfs rescan`, the polling timer, later the watcher),
coalescing them (requests that arrive during a rescan are served by one more rescan after it), and
the events that tell each requester its rescan is over.
Concurrency: trio tasks on the event-loop thread; the rescan itself runs in a worker thread. An
exception from a rescan propagates to the supervisor, which logs it and restarts this task after its
backoff; the failed request stays queued, so the restarted task retries it.
"""

from __future__ import annotations

import logging
import threading

import trio

from musicfs.daemon.notify import Notifier
from musicfs.index.scanner import ScanCancelled
from musicfs.library import Library

log = logging.getLogger(__name__)


class Rescans:
    """The rescan queue of one library."""

    def __init__(self, library: Library, notifier: Notifier) -> None:
        self.library = library
        self.notifier = notifier
        self._wanted = trio.Event()
        self._reasons: list[str] = []
        self._waiters: list[trio.Event] = []
        self.completed = 0
        self.failed = 0

    def request(self, why: str) -> trio.Event:
        """Ask for a rescan; the returned event is set when a rescan started after this call ends."""
        done = trio.Event()
        self._waiters.append(done)
        self._reasons.append(why)
        self._wanted.set()
        return done

    async def run(self) -> None:
        """Serve requests forever (a supervised task)."""
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            reasons, self._reasons = self._reasons, []
            waiters, self._waiters = self._waiters, []
            try:
                await self._rescan(", ".join(dict.fromkeys(reasons)))
            except Exception:
                # Keep the request: the supervisor restarts this task after its backoff, and the
                # restarted task tries again (until the crash-loop limit marks it failed).
                self._reasons = reasons + self._reasons
                self._wanted.set()
                raise
            finally:
                for waiter in waiters:
                    waiter.set()

    async def _rescan(self, why: str) -> None:
        log.info("rescan (%s) started", why)
        self.notifier.status("rescanning")
        try:
            await trio.to_thread.run_sync(_rescan_in_worker, self.library, abandon_on_cancel=True)
        except ScanCancelled:
            log.info("rescan (%s) stopped for shutdown; what it committed is kept", why)
            return
        except BaseException:
            self.failed += 1
            self.notifier.status(f"serving {self.library.tree.track_count} tracks (last rescan failed)")
            raise
        self.completed += 1
        log.info("rescan (%s) finished: serving %d files", why, self.library.tree.file_count)
        self.notifier.status(f"serving {self.library.tree.track_count} tracks")

    async def poll(self, interval: float) -> None:
        """Request a rescan every `interval` seconds (origins where change events are not seen)."""
        while True:
            await trio.sleep(interval)
            self.request("periodic")


def _rescan_in_worker(library: Library) -> None:
    """Run a rescan; an exception carries the name of the worker thread it was raised in (2.2)."""
    try:
        library.rescan()
    except Exception as exc:
        exc.add_note(f"raised in thread {threading.current_thread().name!r}")
        raise
