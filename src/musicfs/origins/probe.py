"""One look at an origin that may hang, shared by every caller that asks meanwhile (7.4).

Owns: `SharedProbe`, the rule behind every origin's `unavailable_reason`: one look (a listing of a
folder, a request to a server) at a time, in a thread of its own; callers share a look under way,
and one stuck for longer than a caller's timeout answers that caller at once (`NoAnswer`), so a hung
origin holds one thread, never a pile; a look that ended since the last answer is used by the next
caller (a slow origin is not taken for a hung one), and after that the next caller starts a new one.
Concurrency: safe from any thread; the state of the last look is kept behind a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from typing import Generic, TypeVar

from musicfs.core.deadline import in_thread

T = TypeVar("T")

STOP_POLL = 0.1  # how often a wait for a look checks its stop event


class NoAnswer(Exception):
    """The look has not answered within the caller's timeout (or the caller was stopped)."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no answer for {waited:.1f} s")
        self.waited = waited


class SharedProbe(Generic[T]):
    """`look()` run in its own thread, at most one at a time; `name` names that thread."""

    def __init__(self, look: Callable[[], T], name: str) -> None:
        self._look = look
        self._name = name
        self._future: Future[T] | None = None
        self._started = 0.0
        self._used = False  # its answer was given to a caller: the next one needs a new look
        self._lock = threading.Lock()

    def ask(self, timeout: float, stop: threading.Event | None = None) -> T:
        """The answer of a look (its exception raised here), or NoAnswer when none came within
        `timeout` s of the look's start or `stop` was set."""
        with self._lock:
            if self._future is None or (self._future.done() and self._used):
                self._future, self._started = in_thread(self._look, self._name), time.monotonic()
                self._used = False
            future, waiting = self._future, time.monotonic() - self._started
        deadline = time.monotonic() + max(0.0, timeout - waiting)
        while not future.done():
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                raise NoAnswer(time.monotonic() - self._started)
            futures.wait((future,), timeout=min(left, STOP_POLL))  # never raises the look's error
        self._used = True
        return future.result()
