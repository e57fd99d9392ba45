"""The control channel of a running daemon: status, rescan, metrics, and a shutdown that blocks
until the process and its mount are gone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from tests.process.conftest import Spawn, assert_clean_log, musicfs


def test_status_lists_state_origins_and_tasks(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy])
    done = musicfs("status", str(daemon.mountpoint))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)  # not a terminal: JSON
    assert status["pid"] == daemon.pid and status["state"] == "ready"
    assert status["tracks"] == 23  # the demo library: 23 tracks (and 2 covers, not counted)
    assert status["origins"] == [{"path": str(library_copy), "state": "ok", "why": None}]
    assert {t["name"]: t["state"] for t in status["tasks"]}["rescans"] == "running"
    socket = Path(os.fsdecode(os.getxattr(daemon.mountpoint, "user.musicfs.control")))
    assert socket.stat().st_mode & 0o777 == 0o600
    by_state_dir = musicfs("status", "--state-dir", str(socket.parent))
    assert json.loads(by_state_dir.stdout)["pid"] == daemon.pid


def test_rescan_command_waits_and_shows_the_change(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy])
    (library_copy / "old_stuff" / "winamp" / "bjork - human behaviour.mp3").unlink()
    done = musicfs("rescan", str(daemon.mountpoint))
    assert done.returncode == 0, done.stderr
    assert "rescan done: 22 tracks" in done.stdout
    assert not (daemon.mountpoint / "Björk" / "Debut (1993)").exists()
    assert_clean_log(daemon)


def test_metrics_are_prometheus_text(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy])
    os.listdir(daemon.mountpoint)
    text = musicfs("metrics", str(daemon.mountpoint)).stdout
    assert "# TYPE musicfs_requests_total counter" in text
    assert 'musicfs_requests_total{op="readdir"}' in text
    assert 'musicfs_request_seconds_bucket{op="readdir",le="+Inf"}' in text
    assert "musicfs_tracks 23" in text
    assert f'musicfs_origin_up{{origin="{library_copy}"}} 1' in text
    assert f'musicfs_origin_reads_total{{origin="{library_copy}",served="page_cache"}}' in text
    assert f'musicfs_origin_timeouts_total{{origin="{library_copy}"}} 0' in text
    assert 'musicfs_task_restarts_total{task="rescans"} 0' in text
    assert "musicfs_open_fds " in text and "musicfs_resident_memory_bytes " in text


@pytest.mark.failure_mode("2.3")
def test_shutdown_returns_only_when_the_daemon_and_its_mount_are_gone(
    library_copy: Path, spawn: Spawn
) -> None:
    daemon = spawn([library_copy])
    started = time.monotonic()
    done = musicfs("shutdown", str(daemon.mountpoint))
    assert done.returncode == 0, done.stderr
    assert daemon.process is not None and daemon.process.poll() is not None, "returned before the exit"
    assert daemon.process.returncode == 0
    assert mount_at(daemon.mountpoint) is None
    assert time.monotonic() - started < 10
    log = daemon.log()
    steps = (
        "shutting down (musicfs shutdown)",
        "shutdown: request loop stopped",
        "shutdown: task health stopped",
        "shutdown: task rescans stopped",
        "shutdown: task control stopped",
        "shutdown: unmounted",
        "stopped cleanly",
    )
    positions = [log.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), log
    assert not (library_copy.parent / "state" / "control.sock").exists()
    assert_clean_log(daemon)


def test_control_commands_without_a_daemon_fail_with_one_line(tmp_path: Path) -> None:
    done = musicfs("status", "--state-dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith("musicfs: error: no MusicFS is running") and done.stderr.count("\n") == 1
    both = musicfs("status")
    assert both.returncode == 2 and "needs a MOUNTPOINT or --state-dir" in both.stderr
