"""2.6: background tasks that fail are restarted with growing delays; a crash loop ends as failed;
a clean exit is not a failure. Driven on trio's MockClock: no real sleeping."""

from __future__ import annotations

import itertools
import logging

import pytest
import trio
import trio.testing

from musicfs.daemon.supervisor import Supervisor


@pytest.mark.allow_log(r"task flaky failed; restarting")
@pytest.mark.failure_mode("2.6")
def test_failing_task_is_restarted_with_backoff_then_runs() -> None:
    supervisor = Supervisor(first_delay=1.0, max_delay=8.0)
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(trio.current_time())
        if len(starts) < 4:
            raise RuntimeError(f"attempt {len(starts)}")
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor.start(nursery, "flaky", flaky, critical=True)
            await trio.sleep(100)
            status = supervisor.tasks["flaky"]
            assert (status.state, status.restarts) == ("running", 3)
            assert status.last_error == "RuntimeError: attempt 3"
            assert supervisor.critical_failures() == []
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0, 2.0, 4.0]


@pytest.mark.allow_log(r"task (optional|broken) failed")
@pytest.mark.failure_mode("2.6")
def test_crash_loop_marks_failed_and_unhealthy(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(max_failures=5, window=60.0, first_delay=0.1)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("always")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor.start(nursery, "broken", broken, critical=True)
            supervisor.start(nursery, "optional", broken, critical=False)

    with caplog.at_level(logging.ERROR):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert calls == 10
    assert supervisor.tasks["broken"].state == "failed"
    assert supervisor.critical_failures() == ["broken"]
    assert any("giving up" in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.allow_log(r"task optional failed")
@pytest.mark.failure_mode("2.6")
def test_optional_failure_keeps_health_and_clean_exit_is_not_a_failure() -> None:
    supervisor = Supervisor(max_failures=2, first_delay=0.1)

    async def broken() -> None:
        raise ValueError("optional")

    async def done() -> None:
        return None

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor.start(nursery, "optional", broken, critical=False)
            supervisor.start(nursery, "oneshot", done, critical=True)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert supervisor.tasks["optional"].state == "failed"
    assert supervisor.tasks["oneshot"].state == "stopped"
    assert supervisor.tasks["oneshot"].last_error is None
    assert supervisor.critical_failures() == []
