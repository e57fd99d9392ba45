"""7.4 in-process: the root listing that tells whether an origin is there keeps its deadline, holds at
most one thread on a hung origin, does not take a slow one for hung, and lets a shutdown go at once.

The listing is made to block with a real folder and a gate the test opens (the process tier does the
same with a bindfs stopped by SIGSTOP, in tests/process/test_frozen_origin.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicfs.origins.base import DOES_NOT_ANSWER
from musicfs.origins.local import LocalOrigin


class GatedOrigin(LocalOrigin):
    """A real folder whose root listing waits for `gate` (a NAS that stopped answering)."""

    def __init__(self, root: Path) -> None:
        super().__init__(1, bytes(root))
        self.gate = threading.Event()
        self.listings = 0
        self.finished = 0

    def _root_state(self) -> tuple[bool, int]:
        self.listings += 1
        self.gate.wait()
        state = super()._root_state()
        self.finished += 1
        return state


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[GatedOrigin]:
    (tmp_path / "a.flac").write_bytes(b"x")
    gated = GatedOrigin(tmp_path)
    yield gated
    gated.gate.set()


@pytest.mark.failure_mode("7.4")
def test_a_hung_listing_is_answered_at_its_deadline_then_at_once(origin: GatedOrigin) -> None:
    started = time.monotonic()
    reason = origin.unavailable_reason(knows_files=True, timeout=0.3)
    assert reason is not None and DOES_NOT_ANSWER in reason
    assert 0.25 < time.monotonic() - started < 2
    again = time.monotonic()
    for _ in range(20):
        assert DOES_NOT_ANSWER in (origin.unavailable_reason(knows_files=True, timeout=0.3) or "")
    assert time.monotonic() - again < 0.5, "a stuck listing must answer later callers at once"
    assert origin.listings == 1, "one stuck thread per hung origin, never a pile"
    origin.gate.set()
    deadline = time.monotonic() + 5
    while origin.finished < 1 and time.monotonic() < deadline:  # the stuck listing ends...
        time.sleep(0.01)
    assert origin.unavailable_reason(knows_files=True, timeout=0.3) is None  # ...and its answer is used
    assert origin.unavailable_reason(knows_files=True, timeout=0.3) is None
    assert origin.listings == 2  # the second call needed a fresh listing


@pytest.mark.failure_mode("7.4")
def test_callers_at_the_same_time_share_one_listing(origin: GatedOrigin) -> None:
    answers: list[str | None] = []
    callers = [
        threading.Thread(target=lambda: answers.append(origin.unavailable_reason(True, timeout=0.5)))
        for _ in range(4)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    assert len(answers) == 4 and all(DOES_NOT_ANSWER in (answer or "") for answer in answers)
    assert origin.listings == 1


@pytest.mark.failure_mode("7.4")
def test_a_stop_ends_the_wait_early(origin: GatedOrigin) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert DOES_NOT_ANSWER in (origin.unavailable_reason(True, timeout=30, stop=stop) or "")
    assert time.monotonic() - started < 1


@pytest.mark.failure_mode("7.4")
def test_a_listing_that_fails_while_waited_for_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    missing = GatedOrigin(tmp_path / "gone")  # the folder does not exist (a USB disk not there yet)
    threading.Timer(0.2, missing.gate.set).start()  # the listing fails while the caller waits on it
    reason = missing.unavailable_reason(knows_files=True, timeout=5)
    assert reason is not None and "No such file or directory" in reason
