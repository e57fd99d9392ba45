"""The systemd watchdog (3.1): WATCHDOG=1 at half of `WatchdogSec`, but only while a self-check passes.

Owns: reading `WATCHDOG_USEC`/`WATCHDOG_PID`, the ping loop, and the diagnosis written when the check
fails: why, every thread's stack (faulthandler) and the trio task tree, so that the restart systemd
then performs leaves an explanation in the journal. A stalled event loop stops the pings by itself:
this loop is a trio task and cannot run.
Concurrency: one trio task; the check it awaits may use worker threads.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
from collections.abc import Awaitable, Callable

import trio

from musicfs.daemon.notify import Notifier

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[str | None]]


def ping_interval() -> float | None:
    """Seconds between pings asked for by systemd, or None when it asked for none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.01)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number", usec)
        return None


async def run_watchdog(notifier: Notifier, interval: float, check: HealthCheck) -> None:
    """Ping while `check()` returns None; on a problem, log it with a diagnosis and hold the pings."""
    failing = False
    while True:
        problem = await check()
        if problem is None:
            if failing:
                log.warning("watchdog: health check passes again; pinging systemd")
            notifier.send("WATCHDOG=1")
        elif not failing:
            log.error("watchdog: %s; no WATCHDOG=1 until the check passes again", problem)
            dump_diagnosis()
        failing = problem is not None
        await trio.sleep(interval)


def dump_diagnosis() -> None:
    """Every thread's stack to stderr, and the trio task tree to the log."""
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    lines: list[str] = []
    _task_tree(trio.lowlevel.current_root_task(), 0, lines)
    log.error("trio tasks:\n%s", "\n".join(lines))


def _task_tree(task: trio.lowlevel.Task | None, depth: int, lines: list[str]) -> None:
    if task is None:
        return
    lines.append("  " * depth + task.name)
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            _task_tree(child, depth + 1, lines)
