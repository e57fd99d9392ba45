"""The real daemon under the chaos tooling: systemd notifications in order (2.10), a rescan writer that
raises or stalls while readers stream files (2.9, 2.2), and the scenario runner itself.

Daemons with a fault plan are started through `chaos_spawn`, which kills them by PID and lazily
unmounts afterwards, like the `spawn` fixture. Every wait is on a condition (a notification, a log
line, a file, a reader counter) with a timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.mountinfo import mount_at
from chaos.notify import FakeNotifySocket
from chaos.oracle import DEMO_VIEW, demo_bytes, listed
from chaos.plan import FaultPlan, FaultRule
from chaos.scenarios import (
    ReaderPool,
    add_track,
    logged_failure,
    mount_state,
    wait_appears,
    writer_failure_plan,
)
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, assert_clean_log

WAIT = 30.0
ChaosSpawn = Callable[[Path, FaultPlan], DaemonProcess]
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def chaos_spawn(tmp_path: Path) -> Iterator[ChaosSpawn]:
    """Start `musicfs mount` with a fault plan; every daemon is killed by PID and unmounted after."""
    started: list[DaemonProcess] = []

    def start(origin: Path, plan: FaultPlan) -> DaemonProcess:
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir(exist_ok=True)
        daemon = DaemonProcess(
            mountpoint, [origin], tmp_path / "state", tmp_path / f"chaos{len(started)}.log", plan=plan
        )
        started.append(daemon)
        daemon.start().wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()


@pytest.mark.failure_mode("2.10")
@pytest.mark.parametrize("form", ["path", "abstract"])
def test_ready_only_once_the_mount_answers_then_stopping(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path, form: str
) -> None:
    notify = FakeNotifySocket(tmp_path / "notify.sock") if form == "path" else FakeNotifySocket.abstract()
    with notify:
        assert notify.address.startswith("@") == (form == "abstract")
        daemon = spawn([demo_library.root], env=notify.env(), ready=False)
        ready, _ = notify.wait_for("READY=1", WAIT)
        # READY=1 is only sent once the mount answers, so it must answer now, from the daemon itself.
        entry = mount_at(daemon.mountpoint)
        assert entry is not None and entry.fstype == "fuse.musicfs"
        assert mount_state(daemon.mountpoint) == "live"
        assert os.stat(daemon.mountpoint).st_ino == 1
        daemon.signal(signal.SIGTERM)
        stopping, _ = notify.wait_for("STOPPING=1", WAIT)
        assert daemon.wait_exit() == 0
        texts = notify.texts()
    assert ready < stopping
    for text in texts[:ready]:  # the start: progress only, never READY or STOPPING
        assert all(line.startswith(("STATUS=", "EXTEND_TIMEOUT_USEC=")) for line in text.splitlines()), texts
    assert any(text.startswith("STATUS=") for text in texts[:ready]), texts
    assert texts[ready].splitlines()[0] == "READY=1" and "STATUS=serving" in texts[ready]
    assert texts[stopping].splitlines()[0] == "STOPPING=1" and "STATUS=stopping (SIGTERM)" in texts[stopping]
    assert sum("READY=1" in text for text in texts) == 1
    assert not any("READY=1" in text for text in texts[stopping:])
    assert mount_at(daemon.mountpoint) is None
    if form == "path":
        assert not (tmp_path / "notify.sock").exists()  # the fake socket cleans up after itself
    assert_clean_log(daemon)


@pytest.mark.failure_mode("2.9")
@pytest.mark.failure_mode("2.2")
def test_rescan_writer_exception_keeps_serving_the_old_tree(
    library_copy: Path, chaos_spawn: ChaosSpawn
) -> None:
    # scan.apply is hit once at start (the first scan's one batch, before the mount). The next hit,
    # in the rescan that finds the added track, raises; the one after that (the retry, or the next
    # SIGHUP's rescan) pauses, so the old tree can be checked while that writer stands still.
    daemon = chaos_spawn(library_copy, writer_failure_plan("scan.apply", startup_hits=1))
    assert daemon.hits().get("scan.apply") == 1, daemon.hits()
    mnt = daemon.mountpoint
    before = sorted(DEMO_VIEW)
    assert listed(mnt) == before
    files = demo_bytes(library_copy, mnt)
    with ReaderPool(files, threads=4, seed=1) as readers:
        assert readers.wait_progress(1, WAIT), readers.errors
        _, added = add_track(library_copy)
        daemon.signal(signal.SIGHUP)
        marker = "chaos.plan.InjectedFault: injected fault at 'scan.apply' (hit 2): chaos writer-exception"
        daemon.wait_log(marker, WAIT)

        daemon.signal(signal.SIGHUP)
        assert daemon.wait_paused("scan.apply", WAIT, hit=3) == 3
        try:
            assert readers.wait_progress(2, WAIT), readers.errors  # readers go on after the failure
            assert listed(mnt) == before  # the old tree, complete
            assert not (mnt / added).exists()
        finally:
            daemon.release("scan.apply")
        assert wait_appears(mnt / added, WAIT), daemon.log()
        assert listed(mnt) == sorted([*before, added])
        assert (mnt / added).read_bytes() == (library_copy / "chaos-added" / "new-track.flac").read_bytes()
        assert readers.wait_progress(1, WAIT), readers.errors  # and on from the new tree
    assert readers.stop() and readers.errors == [], readers.errors

    # 2.2: the failure is logged at ERROR, naming a thread, with the traceback down to the fault.
    log = daemon.log()
    failure = logged_failure(log, marker)
    assert failure is not None, log
    assert failure.level == "ERROR" and failure.thread, failure
    assert failure.traceback.startswith("Traceback (most recent call last):"), failure
    assert 'fault_point("scan.apply")' in failure.traceback, failure
    assert len(re.findall(r" ERROR ", log)) == 1 and log.count("Traceback") == 1, log
    assert [(i["point"], i["hit"], i["action"]) for i in daemon.injected()] == [
        ("scan.apply", 2, "raise"),
        ("scan.apply", 3, "pause"),
    ]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert mount_at(mnt) is None


@pytest.mark.failure_mode("2.9")
def test_reads_keep_answering_while_the_rescan_writer_is_paused(
    library_copy: Path, chaos_spawn: ChaosSpawn
) -> None:
    plan = FaultPlan([FaultRule("tree.publish", "pause", after=2, count=1)])  # 2: load + first scan
    daemon = chaos_spawn(library_copy, plan)
    mnt = daemon.mountpoint
    assert listed(mnt) == sorted(DEMO_VIEW)
    files = demo_bytes(library_copy, mnt)
    _, added = add_track(library_copy)
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_paused("tree.publish", WAIT) == 3
    try:
        # The writer stands between building the new tree and publishing it: the old one serves.
        with ReaderPool(files, threads=4, seed=2) as readers:
            assert readers.wait_progress(2, WAIT), readers.errors
        assert readers.errors == []
        assert listed(mnt) == sorted(DEMO_VIEW)
    finally:
        daemon.release("tree.publish")
    assert wait_appears(mnt / added, WAIT), daemon.log()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert_clean_log(daemon)


@pytest.mark.failure_mode("2.1")
def test_scenario_runner_smoke(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "run", "sigterm-idle", "--seed", "5", "--workdir", str(workdir)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("PASS sigterm-idle (seed 5)"), done.stdout
    assert "SIGTERM to pid" in done.stdout and "no mount left" in done.stdout
    assert mount_at(workdir / "mnt") is None
    assert (workdir / "daemon0.log").is_file()  # a given work folder is kept, logs and all
