"""Supervised background tasks: restarted with backoff when they fail, marked failed in a crash loop.

Owns: `Supervisor` and the `TaskStatus` of every background task (rescans, watchers, health checks,
the watchdog pinger). A task that raises is logged with its traceback and restarted after a delay
that starts small and doubles up to a ceiling; `max_failures` failures within `window` seconds mark
it failed instead of spinning. A task that returns is recorded as stopped, never as a failure.
Critical tasks are told apart: one that has failed makes `healthy()` false, which stops the systemd
watchdog pings.
Concurrency: everything runs on the trio thread; statuses are read by the control channel there too.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

log = logging.getLogger(__name__)

TaskFunction = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class TaskStatus:
    """What the operator sees of one supervised task."""

    name: str
    critical: bool
    state: str = "starting"  # starting, running, restarting, stopped, failed
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # wall-clock time
    failures: deque[float] = field(default_factory=deque)  # trio clock times within the window
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "critical": self.critical,
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class Supervisor:
    """Runs background tasks in a nursery and keeps them alive."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.tasks: dict[str, TaskStatus] = {}

    def start(self, nursery: trio.Nursery, name: str, function: TaskFunction, *, critical: bool) -> None:
        """Start `function` under supervision in `nursery`."""
        status = TaskStatus(name, critical)
        self.tasks[name] = status
        nursery.start_soon(self._supervise, status, function, name=f"supervised:{name}")

    def critical_failures(self) -> list[str]:
        """The names of the critical tasks that failed for good (the watchdog then stops pinging)."""
        return [t.name for t in self.tasks.values() if t.critical and t.state == "failed"]

    def failed(self) -> list[TaskStatus]:
        return [t for t in self.tasks.values() if t.state == "failed"]

    async def stop(self, order: Sequence[str], timeout: float) -> None:
        """Cancel the tasks one group at a time, in `order` (fnmatch patterns; the rest last), waiting
        up to `timeout` seconds for each to end; each step is logged with its duration."""
        remaining = dict(self.tasks)
        groups = [[n for n in remaining if fnmatch.fnmatch(n, pattern)] for pattern in order]
        groups.append(list(remaining))
        for group in groups:
            for name in group:
                status = remaining.pop(name, None)
                if status is None:
                    continue
                started = trio.current_time()
                status.scope.cancel()
                with trio.move_on_after(timeout):
                    await status.done.wait()
                took = trio.current_time() - started
                log.info(
                    "shutdown: task %s stopped in %.3f s%s",
                    name,
                    took,
                    "" if status.done.is_set() else " (did not end in time)",
                )

    async def _supervise(self, status: TaskStatus, function: TaskFunction) -> None:
        with status.scope:
            try:
                await self._keep_running(status, function)
            finally:
                status.done.set()

    async def _keep_running(self, status: TaskStatus, function: TaskFunction) -> None:
        delay = self.first_delay
        while True:
            status.state = "running"
            try:
                await function()
            except Exception as exc:
                now = trio.current_time()
                status.failures.append(now)
                while status.failures and status.failures[0] < now - self.window:
                    status.failures.popleft()
                status.last_error = f"{type(exc).__name__}: {exc}"
                status.last_error_at = time.time()
                if len(status.failures) >= self.max_failures:
                    status.state = "failed"
                    log.error(
                        "task %s failed %d times within %g s; giving up%s",
                        status.name,
                        len(status.failures),
                        self.window,
                        " (critical)" if status.critical else "",
                        exc_info=exc,
                    )
                    return
                status.state = "restarting"
                status.restarts += 1
                log.error(
                    "task %s failed; restarting in %.1f s (restart %d)",
                    status.name,
                    delay,
                    status.restarts,
                    exc_info=exc,
                )
                await trio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
            else:
                status.state = "stopped"
                log.info("task %s finished", status.name)
                return
