"""Fault plans (chaos.plan) and what they prove in-process: a writer that fails at any fault point
changes nothing readers see (2.9), and the next rescan repairs everything.

The first tests pin the plan's own semantics (after, count, seeded probability, pause and release
across threads and through files, hit counting, JSON, installing the hook, the chaos launcher),
since every chaos scenario and process test builds on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.launch import EXIT_BAD_PLAN
from chaos.plan import (
    FaultPlan,
    FaultRule,
    InjectedFault,
    install,
    installed,
    paused_file,
    paused_hit,
    plan_of,
    read_hits,
    release_file,
    uninstall,
)
from chaos.scenarios import ADDED_VIEW_PATH, add_track
from musicfs.core.config import build_config
from musicfs.core.faults import fault_point
from musicfs.index.store import Index
from musicfs.library import Library
from musicfs.tree.snapshot import Tree

WAIT = 10.0


def _outcomes(plan: FaultPlan, point: str, hits: int) -> list[bool]:
    """For each of `hits` hits of `point`: did the plan raise?"""
    raised = []
    for _ in range(hits):
        try:
            plan.hit(point)
        except InjectedFault:
            raised.append(True)
        else:
            raised.append(False)
    return raised


def _wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


# -- plan semantics -----------------------------------------------------------------------------------


def test_after_and_count_choose_which_hits_raise() -> None:
    plan = plan_of({"point": "scan.apply", "after": 2, "count": 2, "message": "disk on fire"})
    assert _outcomes(plan, "scan.apply", 6) == [False, False, True, True, False, False]
    assert plan.hits() == {"scan.apply": 6}
    assert [(i.point, i.hit, i.action) for i in plan.injected()] == [
        ("scan.apply", 3, "raise"),
        ("scan.apply", 4, "raise"),
    ]
    with pytest.raises(InjectedFault, match=r"injected fault at 'tree.publish' \(hit 1\): boom") as error:
        plan_of({"point": "tree.*", "message": "boom"}).hit("tree.publish")
    assert isinstance(error.value, RuntimeError) and error.value.point == "tree.publish"


def test_patterns_count_every_point_and_rules_count_their_own_matches() -> None:
    plan = plan_of({"point": "fs.*", "after": 1, "count": 1}, {"point": "scan.apply", "count": 1})
    assert _outcomes(plan, "fs.read", 1) == [False]  # the fs.* rule's first match: skipped
    assert _outcomes(plan, "fs.lookup", 2) == [True, False]  # its second match acts, then it is spent
    assert _outcomes(plan, "layout.save", 3) == [False] * 3  # no rule: counted only
    assert _outcomes(plan, "scan.apply", 2) == [True, False]
    assert plan.hits() == {"fs.read": 1, "fs.lookup": 2, "layout.save": 3, "scan.apply": 2}


def test_probability_is_reproducible_from_the_seed() -> None:
    def run(seed: int) -> list[bool]:
        return _outcomes(plan_of({"point": "x", "probability": 0.5}, seed=seed), "x", 200)

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert 60 < sum(first) < 140
    assert _outcomes(plan_of({"point": "x", "probability": 0.0}), "x", 50) == [False] * 50
    # The RNG is drawn only for hits past `after` and within `count`.
    counted = _outcomes(plan_of({"point": "x", "after": 5, "count": 3, "probability": 0.5}, seed=7), "x", 200)
    assert not any(counted[:5]) and sum(counted) == 3


def test_sleep_stalls_the_hitting_thread() -> None:
    plan = plan_of({"point": "slow", "action": "sleep", "seconds": 0.05, "count": 1})
    started = time.monotonic()
    plan.hit("slow")
    assert time.monotonic() - started >= 0.05
    started = time.monotonic()
    plan.hit("slow")
    assert time.monotonic() - started < 0.05


def test_pause_blocks_one_thread_until_released_while_others_go_on() -> None:
    plan = plan_of({"point": "tree.publish", "action": "pause", "count": 1})
    done = threading.Event()

    def writer() -> None:
        plan.hit("tree.publish")
        done.set()

    thread = threading.Thread(target=writer, name="paused-writer", daemon=True)
    thread.start()
    try:
        plan.wait_paused("tree.publish", WAIT)
        assert plan.paused("tree.publish") == 1 and not done.is_set()
        plan.hit("fs.read")  # another thread hitting points is not held up by the paused one
        plan.hit("tree.publish")  # count=1 is spent: this hit does not pause
    finally:
        plan.release("tree.publish")
    thread.join(WAIT)
    assert done.is_set() and plan.paused("tree.publish") == 0
    assert plan.hits() == {"tree.publish": 2, "fs.read": 1}
    with pytest.raises(TimeoutError):
        plan.wait_paused("tree.publish", 0.01)


def test_pause_with_a_time_limit_goes_on_by_itself() -> None:
    plan = plan_of({"point": "p", "action": "pause", "seconds": 0.05})
    started = time.monotonic()
    plan.hit("p")
    assert 0.05 <= time.monotonic() - started < WAIT


def test_state_dir_pause_waits_for_a_release_file(tmp_path: Path) -> None:
    """The cross-process protocol, driven here from two threads of one process."""
    plan = FaultPlan([FaultRule("scan.apply", "pause", count=2)], state_dir=tmp_path)

    def scanner() -> None:
        for _ in range(3):
            plan.hit("scan.apply")

    worker = threading.Thread(target=scanner, name="scanner", daemon=True)
    worker.start()
    try:
        for hit in (1, 2):  # a release is consumed: the second pause waits for its own release
            assert _wait_until(lambda: paused_hit(tmp_path, "scan.apply") == hit)  # noqa: B023
            pid, number, thread = paused_file(tmp_path, "scan.apply").read_text().split()
            assert (int(pid), int(number), thread) == (os.getpid(), hit, "scanner")
            assert plan.paused("scan.apply") == 1
            release_file(tmp_path, "scan.apply").touch()
            assert _wait_until(lambda: not release_file(tmp_path, "scan.apply").exists())
        worker.join(WAIT)
        assert not worker.is_alive()
    finally:
        release_file(tmp_path, "scan.apply").touch()  # never leave the worker paused
    assert not paused_file(tmp_path, "scan.apply").exists()
    document = read_hits(tmp_path)
    assert document["pid"] == os.getpid() and document["hits"] == {"scan.apply": 3}
    assert [(i["hit"], i["action"]) for i in document["injected"]] == [(1, "pause"), (2, "pause")]


def test_hits_json_counts_every_point(tmp_path: Path) -> None:
    plan = FaultPlan([FaultRule("scan.apply", count=0)], state_dir=tmp_path)
    assert read_hits(tmp_path) == {}
    plan.hit("scan.apply")
    assert read_hits(tmp_path)["hits"] == {"scan.apply": 1}  # a point a rule names: written at once
    for _ in range(100):
        plan.hit("fs.getattr")  # points no rule names: flushed shortly after, in one write
    assert _wait_until(lambda: read_hits(tmp_path).get("hits", {}).get("fs.getattr") == 100)
    assert json.loads((tmp_path / "hits.json").read_text())["hits"] == {"scan.apply": 1, "fs.getattr": 100}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hits.json"]  # no temp file left behind


def test_json_round_trip_and_validation(tmp_path: Path) -> None:
    plan = FaultPlan(
        [
            FaultRule("scan.*", "raise", after=1, count=2, probability=0.25, message="m"),
            FaultRule("fs.read", "sleep", seconds=0.5),
            FaultRule("tree.publish", "pause"),
        ],
        seed=42,
        state_dir=tmp_path,
    )
    again = FaultPlan.from_json(plan.to_json())
    assert again == plan
    assert again.rules[0].count == 2 and again.rules[1].count is None and again.state_dir == tmp_path
    assert FaultPlan.from_json('{"rules": [{"point": "x"}]}').rules == [FaultRule("x")]
    for bad in [
        "[]",
        '{"rules": [], "colour": 1}',
        '{"rules": [{"point": "x", "action": "explode"}]}',
        '{"rules": [{"point": "x", "probability": 2}]}',
        '{"rules": [{"point": "x", "after": -1}]}',
        '{"rules": [{"point": "x", "when": 1}]}',
        '{"rules": [{"point": ""}]}',
    ]:
        with pytest.raises(ValueError):
            FaultPlan.from_json(bad)


def test_install_and_uninstall_the_hook() -> None:
    plan = plan_of({"point": "scan.apply", "count": 1})
    with installed(plan):
        with pytest.raises(InjectedFault):
            fault_point("scan.apply")
        fault_point("scan.apply")
    fault_point("scan.apply")  # no hook: nothing happens, nothing is counted
    assert plan.hits() == {"scan.apply": 2}
    install(plan)
    try:
        fault_point("tree.publish")
    finally:
        uninstall()
    fault_point("tree.publish")
    assert plan.hits() == {"scan.apply": 2, "tree.publish": 1}


def _launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaos.launch", *args], capture_output=True, text=True, timeout=60
    )


def test_the_chaos_launcher_runs_musicfs_with_the_plan_and_a_bad_plan_stops_it(
    library_copy: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(FaultPlan([FaultRule("scan.apply")], state_dir=tmp_path / "chaos").to_json())
    scan = ["scan", "--origin", str(library_copy), "--state-dir", str(tmp_path / "state")]

    faulted = _launch(str(plan_file), *scan)
    assert faulted.returncode == 70, faulted.stderr  # the injected fault is an internal error
    assert "raise at scan.apply" in faulted.stderr and "InjectedFault" in faulted.stderr
    assert read_hits(tmp_path / "chaos")["hits"]["scan.apply"] == 1

    plain = subprocess.run(
        [str(Path(sys.executable).with_name("musicfs")), *scan], capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 0, plain.stderr  # musicfs itself never loads a plan
    assert "fault plan" not in plain.stderr

    plan_file.write_text('{"rules": [{"point": "x", "action": "explode"}]}')
    broken = _launch(str(plan_file), *scan)
    assert broken.returncode == EXIT_BAD_PLAN and broken.stdout == ""
    assert broken.stderr.startswith("musicfs chaos: cannot load the fault plan")
    assert len(broken.stderr.splitlines()) == 1


# -- 2.9: a failed writer changes nothing visible -------------------------------------------------------


def _paths(tree: Tree) -> set[str]:
    return {tree.path_of(node).decode() for _, node in tree.items() if not node.is_dir}


@pytest.mark.failure_mode("2.9")
@pytest.mark.parametrize("point", ["scan.apply", "layout.save", "tree.publish"])
def test_a_rescan_failing_at_a_writer_step_leaves_the_last_tree(
    library_copy: Path, tmp_path: Path, point: str
) -> None:
    config = build_config({}, {"origin": [str(library_copy)], "state_dir": str(tmp_path)})
    library = Library(config, Index(tmp_path / "index.sqlite"))
    library.rescan()
    before = library.tree
    shown_before = _paths(before)
    assert before.file_count == len(shown_before) > 20
    _, added = add_track(library_copy)

    seen: set[int] = set()
    incomplete: list[Tree] = []
    stop = threading.Event()

    def reader() -> None:  # keeps checking that every tree it is handed is a complete one
        while not stop.is_set():
            tree = library.tree
            if len(_paths(tree)) != tree.file_count:
                incomplete.append(tree)
            seen.add(tree.file_count)

    watcher = threading.Thread(target=reader, name="tree-reader")
    watcher.start()
    try:
        with installed(plan_of({"point": point, "count": 1})) as plan:
            with pytest.raises(InjectedFault, match=point):
                library.rescan()
            assert library.tree is before
            assert _paths(library.tree) == shown_before and added not in _paths(library.tree)
            library.rescan()
        assert plan.hits()[point] >= 2
    finally:
        stop.set()
        watcher.join(WAIT)
        library.index.close()
    assert not watcher.is_alive() and not incomplete
    assert _paths(library.tree) == shown_before | {added}
    assert added == ADDED_VIEW_PATH and library.tree.file_count == before.file_count + 1
    assert seen <= {before.file_count, before.file_count + 1}
