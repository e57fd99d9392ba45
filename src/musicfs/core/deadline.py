"""Blocking calls that may never return (a frozen NAS or cache disk), run where a deadline can be kept.

Owns: `in_thread`, which runs one call in a daemon thread of its own and hands back a
`concurrent.futures.Future` that any number of waits (`result(timeout)`) can poll, and
`call_with_deadline`, the one-shot form; and `DeadlineWorkers`, a few reused daemon threads for the
many calls to one device (the cache disk), whose first call that passes its deadline makes every
later call fail at once (`Stalled`) until it has returned. A call that passes its deadline is
abandoned, not stopped: its thread stays blocked in the kernel until the call returns (or the
process exits, which the kernel allows: a FUSE or NFS request is killable), so callers keep the
future of a stuck call and do not start another one for the same thing (one stuck thread per hung
path, never a pile).
Concurrency: safe from any thread; the threads are daemon threads, so they never hold up the exit.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
IDLE_EXIT = 30.0  # seconds an idle worker of `DeadlineWorkers` waits for work before it ends


def in_thread(call: Callable[[], T], name: str) -> Future[T]:
    """Start `call()` in a new daemon thread named `name`; its outcome lands in the returned future."""
    future: Future[T] = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # the caller sees it through the future
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def call_with_deadline(call: Callable[[], T], timeout: float, name: str) -> T:
    """`call()`'s result, or TimeoutError when it has not returned within `timeout` seconds (the call
    is then left running in its thread); exceptions of the call are raised here."""
    return in_thread(call, name).result(timeout)


class Stalled(TimeoutError):
    """A call to a device that did not answer within its deadline, or refused because one still hangs."""


class DeadlineWorkers:
    """Calls to one device that may hang (the cache disk), run in at most `limit` daemon threads and
    waited for up to `timeout` seconds each (longer while the running calls report `progress`).

    A call that passes its deadline raises `Stalled` to its caller and is abandoned; until it has
    returned, every new call raises `Stalled` at once without starting: a hung device makes no
    caller wait more than one deadline after the first, and holds at most `limit` threads.
    A call must not call `call` itself (it could wait for its own thread).
    """

    def __init__(self, name: str, limit: int, timeout: float) -> None:
        """`name` names the threads."""
        if limit < 1 or timeout <= 0:
            raise ValueError("DeadlineWorkers need a thread and a positive timeout")
        self.name = name
        self.limit = limit
        self.timeout = timeout
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._threads = 0
        self._pending = 0  # calls queued or running
        self._late = 0  # calls that passed their deadline and have not returned yet
        self._progress = 0

    @property
    def stalled(self) -> bool:
        """Whether a call that passed its deadline still has not returned."""
        return self._late > 0

    def progress(self) -> None:
        """Said by a long call (from its worker thread) each time the device answered: the calls
        waited for get another `timeout` from now."""
        with self._lock:
            self._progress += 1

    def call(self, function: Callable[[], T]) -> T:
        """`function()`'s result (or its exception), or `Stalled`."""
        future: Future[T] = Future()
        with self._lock:
            if self._late:
                raise Stalled("did not answer: an earlier call still waits for it")
            self._jobs.put((future, function))
            self._pending += 1
            if self._pending > self._threads and self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name=self.name, daemon=True).start()
            seen = self._progress
        while True:
            with contextlib.suppress(TimeoutError):  # a wait that ends does not raise the call's error
                future.exception(self.timeout)
            if future.done():
                return future.result()
            with self._lock:
                if self._progress != seen:
                    seen = self._progress
                    continue
                if future.cancel():  # it never got a thread: every thread was busy all along
                    raise Stalled(f"did not answer within {self.timeout:g} s") from None
                if future.done():
                    continue
                self._late += 1
            future.add_done_callback(self._late_call_returned)
            raise Stalled(f"did not answer within {self.timeout:g} s")

    def _late_call_returned(self, _future: Future[Any]) -> None:
        with self._lock:
            self._late -= 1

    def _work(self) -> None:
        while True:
            try:
                future, function = self._jobs.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # calls are queued under the lock: none is on its way
                        self._threads -= 1
                        return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as exc:  # the caller sees it through the future
                    future.set_exception(exc)
            with self._lock:
                self._pending -= 1
