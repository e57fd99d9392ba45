"""`DeadlineWorkers`: calls to a device that may hang keep their deadline, a hung device holds a
bounded number of threads and delays only the first caller, progress keeps a long call going, and
hung workers never hold up the exit of the process.

A hung call is a real thread blocked on an event the test sets; the exit is a real child process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from musicfs.core.deadline import DeadlineWorkers, Stalled

TIMEOUT = 0.3
NAME = "test-disk"  # the child process's; each test in this process names its threads on its own


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What hung calls wait for; always set at the end, so no test leaves a thread blocked."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"test-disk-{request.node.name}"


def _threads(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == name)


def test_a_call_gives_its_result_or_its_exception(name: str) -> None:
    workers = DeadlineWorkers(name, 2, TIMEOUT)
    assert workers.call(lambda: 42) == 42

    def fails() -> None:
        raise TimeoutError("the call's own timeout, not the deadline")

    with pytest.raises(TimeoutError) as raised:
        workers.call(fails)
    assert not isinstance(raised.value, Stalled)
    assert not workers.stalled


def test_a_hung_call_stalls_the_device_until_it_returns(gate: threading.Event, name: str) -> None:
    workers = DeadlineWorkers(name, 4, TIMEOUT)
    started = time.monotonic()
    with pytest.raises(Stalled, match=r"did not answer within 0\.3 s"):
        workers.call(gate.wait)
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1
    assert workers.stalled

    ran = []
    again = time.monotonic()
    for _ in range(50):
        with pytest.raises(Stalled):
            workers.call(lambda: ran.append(1))
    assert time.monotonic() - again < 0.5, "later callers must be refused at once"
    assert ran == [], "nothing may start on a hung device"
    assert _threads(name) == 1, "one stuck thread, never a pile"

    gate.set()
    deadline = time.monotonic() + 5
    while workers.stalled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert workers.call(lambda: "answers again") == "answers again"


def test_a_device_holds_at_most_its_limit_of_threads(gate: threading.Event, name: str) -> None:
    workers = DeadlineWorkers(name, 3, TIMEOUT)
    outcomes: list[str] = []

    def caller() -> None:
        try:
            workers.call(gate.wait)
            outcomes.append("returned")
        except Stalled:
            outcomes.append("stalled")

    callers = [threading.Thread(target=caller) for _ in range(10)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(TIMEOUT + 2)
    assert outcomes == ["stalled"] * 10
    assert _threads(name) == 3


def test_progress_keeps_a_long_call_waiting(name: str) -> None:
    workers = DeadlineWorkers(name, 1, 1.0)

    def long_check() -> str:
        for _ in range(6):  # 1.5 deadlines in all, but the disk answers every quarter deadline
            time.sleep(0.25)
            workers.progress()
        return "checked"

    assert workers.call(long_check) == "checked"
    assert not workers.stalled


def test_hung_workers_never_hold_up_the_exit() -> None:
    child = (
        "import threading\n"
        "from musicfs.core.deadline import DeadlineWorkers, Stalled\n"
        f"workers = DeadlineWorkers('{NAME}', 2, {TIMEOUT})\n"
        "try:\n"
        "    workers.call(threading.Event().wait)\n"
        "except Stalled:\n"
        "    print('stalled', flush=True)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "stalled\n", done.stderr
    assert time.monotonic() - started < TIMEOUT + 5
