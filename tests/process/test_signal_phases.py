"""7.5: every phase of the daemon's life handles every signal as documented, not only the serving one.

SIGTERM/SIGINT stop in order with exit 0; SIGHUP is ignored until the mount serves. The phases before
and after the event loop are held at exact moments with fault points: a first scan paused before
its second batch, the instant the mount appeared (before the event loop takes the signals over),
and the final shutdown after the event loop ended. The origin wait is a real one: a known origin
renamed away.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from chaos.plan import FaultPlan, FaultRule
from musicfs.demo import generate_bulk
from musicfs.index.scanner import BATCH
from tests.process.conftest import Spawn, assert_clean_log, wait_until

TRACKS = BATCH + 100  # two batches: a stop after the first keeps it


def _indexed_files(state_dir: Path) -> int:
    with sqlite3.connect(f"file:{state_dir / 'index.sqlite'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM files").fetchone()[0])


def _shown_files(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk") / "library"
    generate_bulk(root, TRACKS)
    return root


@pytest.mark.failure_mode("7.5")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_during_the_first_scan_keeps_what_was_committed_and_exits_zero(
    bulk: Path, spawn: Spawn, signum: int
) -> None:
    daemon = spawn([bulk], plan=FaultPlan([FaultRule("scan.apply", "pause", count=1)]), ready=False)
    daemon.wait_paused("scan.apply")  # the first batch has its tags and is about to be committed
    daemon.signal(signum)
    daemon.wait_log(f"{signal.Signals(signum).name} during the first scan")
    daemon.release("scan.apply")
    assert daemon.wait_exit(30) == 0
    assert mount_at(daemon.mountpoint) is None  # it never mounted
    assert _indexed_files(daemon.state_dir) == BATCH  # the batch in hand was committed, no more
    assert "stopped during the first scan" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.failure_mode("7.5")
def test_sighup_during_the_first_scan_is_ignored(bulk: Path, spawn: Spawn) -> None:
    daemon = spawn([bulk], plan=FaultPlan([FaultRule("scan.apply", "pause", count=1)]), ready=False)
    daemon.wait_paused("scan.apply")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP ignored")
    daemon.release("scan.apply")
    daemon.wait_ready(60)
    assert _shown_files(daemon.mountpoint) == TRACKS
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert mount_at(daemon.mountpoint) is None
    assert_clean_log(daemon)


@pytest.mark.allow_log(r"is missing; serving what the index knows", r"open failed: .* is not there")
@pytest.mark.failure_mode("7.5")
def test_signals_during_the_origin_wait(library_copy: Path, spawn: Spawn, tmp_path: Path) -> None:
    config = tmp_path / "musicfs.toml"
    config.write_text("origin_wait = 60\n")
    first = spawn([library_copy], args=["--config", str(config)])
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    library_copy.rename(tmp_path / "away")  # the NAS is not mounted yet at the next start

    daemon = spawn([library_copy], args=["--config", str(config)], ready=False)
    daemon.wait_log("waiting up to 60 s for origin")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP ignored")
    assert daemon.process is not None and daemon.process.poll() is None
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0
    assert time.monotonic() - started < 3, "the origin wait must end at once on SIGTERM"
    assert mount_at(daemon.mountpoint) is None
    assert "stopped while waiting for origins" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.failure_mode("7.5")
def test_signals_during_the_final_shutdown(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy], plan=FaultPlan([FaultRule("shutdown.final", "pause")]))
    daemon.signal(signal.SIGTERM)
    daemon.wait_paused("shutdown.final")  # the mount is gone; the index is not closed yet
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP ignored")
    daemon.signal(signal.SIGTERM)
    daemon.wait_log("SIGTERM during the final shutdown")
    daemon.signal(signal.SIGINT)
    daemon.wait_log("SIGINT during the final shutdown")
    daemon.release("shutdown.final")
    assert daemon.wait_exit(30) == 0
    assert mount_at(daemon.mountpoint) is None
    assert "stopped cleanly" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.failure_mode("7.5")
def test_sighup_the_moment_the_mount_appears_is_ignored(library_copy: Path, spawn: Spawn) -> None:
    for attempt in range(3):
        daemon = spawn([library_copy], plan=FaultPlan([FaultRule("service.mounted", "pause")]), ready=False)
        daemon.wait_paused("service.mounted")  # mounted; the event loop has not taken the signals yet
        assert mount_at(daemon.mountpoint) is not None
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("SIGHUP ignored")
        daemon.release("service.mounted")
        daemon.wait_ready()
        assert _shown_files(daemon.mountpoint) > 0, f"attempt {attempt}"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0, f"attempt {attempt}"
        assert mount_at(daemon.mountpoint) is None, f"attempt {attempt}: a mount was left"
        assert_clean_log(daemon)


@pytest.mark.failure_mode("7.5")
def test_sigterm_the_moment_the_mount_appears_stops_in_order(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy], plan=FaultPlan([FaultRule("service.mounted", "pause")]), ready=False)
    daemon.wait_paused("service.mounted")
    daemon.signal(signal.SIGTERM)
    daemon.wait_log("SIGTERM during mounting")
    daemon.release("service.mounted")
    assert daemon.wait_exit(30) == 0
    wait_until(lambda: mount_at(daemon.mountpoint) is None, "the mount to be gone", daemon.log, 5)
    assert "shutting down (SIGTERM)" in daemon.log()
    assert_clean_log(daemon)
