"""Blocking calls that may never return (a frozen NAS), run where a deadline can be kept.

Owns: `in_thread`, which runs one call in a daemon thread of its own and hands back a
`concurrent.futures.Future` that any number of waits (`result(timeout)`) can poll, and
`call_with_deadline`, the one-shot form. A call that passes its deadline is abandoned, not stopped:
its thread stays blocked in the kernel until the call returns (or the process exits, which the
kernel allows: a FUSE or NFS request is killable), so callers keep the future of a stuck call and do
not start another one for the same thing (one stuck thread per hung path, never a pile).
Concurrency: safe from any thread; the threads are daemon threads, so they never hold up the exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


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
