"""The systemd watchdog and the supervisor in the real daemon (3.1, 2.6): pings at the asked rate
while healthy; a task killed by an exception is restarted and the mount keeps serving; a crash loop
ends as a failed task shown by `musicfs status`, and the pings stop; a stalled event loop sends none."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from chaos.notify import FakeNotifySocket
from chaos.plan import FaultPlan, FaultRule
from tests.process.conftest import Spawn, status_of

WATCHDOG_USEC = 200_000  # pings every 0.1 s


def _pings(notify: FakeNotifySocket) -> list[float]:
    return [m.at for m in notify.messages() if "WATCHDOG=1" in m.text]


def _wait_pings(notify: FakeNotifySocket, count: int, timeout: float = 20) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pings = _pings(notify)
        if len(pings) >= count:
            return pings
        time.sleep(0.02)
    raise AssertionError(f"only {len(_pings(notify))} of {count} WATCHDOG=1 within {timeout} s")


def _task(status: dict[str, object], name: str) -> dict[str, object]:
    tasks = status["tasks"]
    assert isinstance(tasks, list)
    (task,) = [t for t in tasks if t["name"] == name]
    return task  # type: ignore[no-any-return]


def _env(notify: FakeNotifySocket) -> dict[str, str]:
    return {**notify.env(), "WATCHDOG_USEC": str(WATCHDOG_USEC)}


@pytest.mark.allow_log(
    r"task rescans failed", r"watchdog: critical task failed: rescans", r"^trio tasks:", r"^Traceback"
)
@pytest.mark.failure_mode("3.1")
@pytest.mark.failure_mode("2.6")
def test_restarted_task_keeps_serving_and_a_crash_loop_stops_the_pings(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    # Every rescan raises: the supervisor restarts the task (0.5, 1, 2, 4 s), then gives up.
    plan = FaultPlan((FaultRule("rescan.start", "raise", after=1, message="injected rescan crash"),))
    with FakeNotifySocket(tmp_path / "notify.sock") as notify:
        daemon = spawn([library_copy], env=_env(notify), plan=plan)
        pings = _wait_pings(notify, 6)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        print(f"ping gaps while healthy: {[round(g, 3) for g in gaps]}")
        # regular pings (a loaded machine may delay one; the stall test checks holes on purpose)
        assert sorted(gaps)[len(gaps) // 2] < 0.3, f"pings should come every ~0.1 s while healthy: {gaps}"

        daemon.signal(1)  # SIGHUP: the first rescan crashes the task
        daemon.wait_log("task rescans failed; restarting", timeout=10)
        assert (daemon.mountpoint / "Björk").is_dir()  # still serving while the task restarts
        restarting = _task(status_of(daemon.mountpoint), "rescans")
        assert restarting["restarts"] >= 1 and "injected rescan crash" in str(restarting["last_error"])

        daemon.wait_log("task rescans failed 5 times", timeout=30)
        daemon.wait_log("watchdog: critical task failed: rescans", timeout=5)
        stopped_at = time.monotonic()
        status = status_of(daemon.mountpoint)
        assert _task(status, "rescans")["state"] == "failed"
        assert status["state"] == "degraded"
        count = len(_pings(notify))
        time.sleep(1.0)  # ten ping intervals: none may arrive now
        assert len(_pings(notify)) == count, "the watchdog kept pinging with a failed critical task"
        assert all(t < stopped_at for t in _pings(notify))
        assert (daemon.mountpoint / "Björk").is_dir()  # reads still work; systemd decides the restart
        assert "trio tasks:" in daemon.log()  # the diagnosis for the journal


@pytest.mark.failure_mode("3.1")
def test_a_stalled_event_loop_sends_no_pings(library_copy: Path, spawn: Spawn, tmp_path: Path) -> None:
    # The next statfs request sleeps 2 s on the event-loop thread: the whole loop stalls.
    plan = FaultPlan((FaultRule("fs.statfs", "sleep", seconds=2.0, after=1, count=1),))
    with FakeNotifySocket(tmp_path / "notify.sock") as notify:
        daemon = spawn([library_copy], env=_env(notify), plan=plan)
        pings = _wait_pings(notify, 30)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert daemon.hits().get("fs.statfs", 0) >= 2  # the stall was injected
        assert max(gaps) >= 1.9, f"a 2 s stall must leave a 2 s hole in the pings: {max(gaps):.2f}"
        assert sorted(gaps)[len(gaps) // 2] < 0.3  # otherwise regular
