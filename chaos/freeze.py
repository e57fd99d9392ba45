"""Freezing a FUSE server the way a NAS or a USB disk freezes: SIGSTOP to a process the caller started.

Owns: `freeze`, which returns only once every thread of the process has stopped. SIGSTOP takes
effect asynchronously: a request sent in between can still be taken by a thread that has not
stopped yet, and the kernel then waits for the answer to that taken request uninterruptibly, even
to let its sender exit (a real disk that freezes mid-request does the same). A test that means
"frozen before the next request" must therefore wait for the stop.
Concurrency: called from one test or scenario thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

STOP_TIMEOUT = 10.0


def freeze(pid: int) -> None:
    """SIGSTOP `pid` (a process the caller started) and wait until all its threads have stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + STOP_TIMEOUT
    while not all(state in "Tt" for state in thread_states(pid)):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not stop: thread states {thread_states(pid)}")
        time.sleep(0.005)


def thread_states(pid: int) -> list[str]:
    """The state letter (R, S, D, T, ...) of every thread of `pid`, from /proc."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            stat = (task / "stat").read_text()
            states.append(stat[stat.rindex(")") + 2])
    return states
