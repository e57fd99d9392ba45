"""2.6 for the rescan queue: a rescan that fails is retried by the restarted task after the backoff,
requests that arrive meanwhile are coalesced, and a crash loop ends as a failed critical task."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from musicfs.daemon.notify import Notifier
from musicfs.daemon.rescans import Rescans
from musicfs.daemon.supervisor import Supervisor


class FakeTree:
    file_count = track_count = 3


class FakeLibrary:
    """Fails its first `failures` rescans."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.tree = FakeTree()

    def rescan(self) -> list[Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(f"index disk hiccup {self.calls}")
        return []


def _run(failures: int, requests: int, until: Any) -> tuple[FakeLibrary, Rescans, Supervisor]:
    library = FakeLibrary(failures)
    rescans = Rescans(library, Notifier())  # type: ignore[arg-type]
    supervisor = Supervisor(first_delay=1.0, max_failures=5, window=60.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor.start(nursery, "rescans", rescans.run, critical=True)
            for _ in range(requests):
                rescans.request("test")
            for _ in range(600):  # virtual seconds; small steps so a slow worker thread is waited for
                if until(library, rescans, supervisor):
                    break
                await trio.sleep(1)
            nursery.cancel_scope.cancel()

    # The threshold lets the worker thread of each rescan finish before virtual time jumps ahead.
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.02))
    return library, rescans, supervisor


@pytest.mark.allow_log(r"task rescans failed; restarting")
@pytest.mark.failure_mode("2.6")
def test_failed_rescan_is_retried_after_backoff() -> None:
    library, rescans, supervisor = _run(failures=2, requests=3, until=lambda _l, r, _s: r.completed)
    assert library.calls == 3  # three requests coalesced into one, failed twice, then done
    assert (rescans.failed, rescans.completed) == (2, 1)
    assert supervisor.tasks["rescans"].restarts == 2 and supervisor.critical_failures() == []


@pytest.mark.allow_log(r"task rescans failed")
@pytest.mark.failure_mode("2.6")
def test_rescan_crash_loop_ends_failed_and_unhealthy() -> None:
    library, _, supervisor = _run(
        failures=100, requests=1, until=lambda _l, _r, s: s.tasks["rescans"].state == "failed"
    )
    assert library.calls == 5
    assert supervisor.tasks["rescans"].state == "failed" and supervisor.critical_failures() == ["rescans"]
