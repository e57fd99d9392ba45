"""4.2.1-4.2.4 in-process: origin health checks run in parallel, each with its own deadline; an origin
goes offline when it vanishes, empties or hangs, degraded when its reads time out, and back to ok by
itself, asking for a rescan when it returns."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

from chaos.origins import FaultyOrigin, OriginFault
from musicfs.daemon.health import OriginHealth
from musicfs.origins.base import EMPTY_BUT_KNOWN
from musicfs.origins.gateway import OriginGateway
from musicfs.origins.local import LocalOrigin
from musicfs.origins.states import OriginStates


def _origin(path: Path, origin_id: int) -> LocalOrigin:
    path.mkdir()
    (path / "a.flac").write_bytes(b"x")
    return LocalOrigin(origin_id, os.fsencode(path))


def _offline(states: OriginStates) -> dict[int, str | None]:
    return {origin_id: states.offline_reason(origin_id) for origin_id in (1, 2)}


@pytest.mark.allow_log(r"is offline", r"is degraded: 3 reads timed out", r"is back; rescanning")
@pytest.mark.failure_mode("4.2.3")
def test_offline_degraded_and_back(tmp_path: Path) -> None:
    origin_states = OriginStates()
    good = OriginGateway(_origin(tmp_path / "good", 1), 1.0, states=origin_states)
    nas = OriginGateway(_origin(tmp_path / "nas", 2), 1.0, states=origin_states)
    rescans: list[str] = []
    degraded: dict[int, str] = {}
    health = OriginHealth(
        {1: good, 2: nas}, origin_states, lambda _id: 1, rescans.append, interval=1.0, timeout=1.0
    )

    async def main() -> list[dict[int, str | None]]:
        seen = []
        await health.check_all()
        seen.append(_offline(origin_states))
        (tmp_path / "nas").rename(tmp_path / "nas-away")
        await health.check_all()
        seen.append(_offline(origin_states))
        (tmp_path / "nas-away").rename(tmp_path / "nas")
        (tmp_path / "nas" / "a.flac").unlink()  # back, but empty: an unmounted share looks like this
        await health.check_all()
        seen.append(_offline(origin_states))
        (tmp_path / "nas" / "a.flac").write_bytes(b"x")
        good.timeouts += 3
        await health.check_all()
        seen.append(_offline(origin_states))
        degraded.update(origin_states.degraded())
        await health.check_all()
        return seen

    states = trio.run(main)
    assert states[0] == {1: None, 2: None}
    assert states[1][1] is None and "No such file" in str(states[1][2])
    assert states[2][2] == EMPTY_BUT_KNOWN
    assert states[3] == {1: None, 2: None}
    assert rescans == ["origin back"]
    assert degraded == {1: "3 reads timed out since the last check"}
    assert origin_states.degraded() == {}  # no new timeouts since the check that saw them


@pytest.mark.allow_log(r"is offline \(no answer within 0.3 s\)")
@pytest.mark.failure_mode("4.2.3")
def test_a_hung_origin_check_has_its_own_deadline(tmp_path: Path) -> None:
    stuck = FaultyOrigin.around(_origin(tmp_path / "stuck", 1), [OriginFault("*", "hang")])

    def hang(knows_files: bool) -> str | None:  # a NAS that never answers a listing
        stuck._released.wait()
        return None

    stuck.unavailable_reason = hang  # type: ignore[method-assign]
    states = OriginStates()
    fine = OriginGateway(_origin(tmp_path / "fine", 2), 1.0, states=states)
    health = OriginHealth(
        {1: OriginGateway(stuck, 1.0, states=states), 2: fine},
        states,
        lambda _id: 1,
        print,
        interval=1,
        timeout=0.3,
    )

    async def main() -> tuple[dict[int, str | None], float]:
        started = trio.current_time()
        await health.check_all()
        return _offline(states), trio.current_time() - started

    try:
        states, took = trio.run(main)
    finally:
        stuck.release()
    assert states[2] is None and "no answer within 0.3 s" in str(states[1])
    assert took < 1.0


@pytest.mark.allow_log(r"is offline \(.*No such file or directory\)", r"is back; rescanning")
@pytest.mark.failure_mode("2.1")
def test_a_deadline_that_passed_while_the_process_was_stopped_is_no_verdict(tmp_path: Path) -> None:
    """Ctrl-Z (SIGTSTP) during a check, `fg` after more than the deadline: every thread stood still,
    so the probe answers just after the continue, but the event loop wakes long past its deadline.
    That is no verdict on the origin (it used to be marked offline, so every read gave EIO until the
    next check). Here the loop is held the way a stopped process holds it (it cannot run while the
    deadline passes), and the probe answers just after the loop is free again."""
    music = FaultyOrigin.around(_origin(tmp_path / "music", 1), [])
    answered = music.unavailable_reason

    def continued_probe(knows_files: bool) -> str | None:
        time.sleep(STOPPED + 0.1)  # its thread was stopped too; it answers right after the continue
        return answered(knows_files)

    music.unavailable_reason = continued_probe  # type: ignore[method-assign]
    states = OriginStates()
    health = OriginHealth(
        {1: OriginGateway(music, 0.3, states=states)}, states, lambda _id: 1, print, interval=1, timeout=0.3
    )

    async def stop_the_loop() -> None:
        await trio.sleep(0.05)  # the check has handed its probe to a thread
        time.sleep(STOPPED)  # the loop cannot run, as in a stopped process

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(health.check_all)
            nursery.start_soon(stop_the_loop)

    trio.run(main)
    assert states.offline_reason(1) is None
    time.sleep(0.2)  # the first probe's thread is back: the next check may probe again
    music.unavailable_reason = answered  # type: ignore[method-assign]
    (tmp_path / "music").rename(tmp_path / "away")
    trio.run(health.check_all)  # a check whose loop is not held up still gives its verdict
    assert "No such file" in str(states.offline_reason(1))


STOPPED = 1.0
