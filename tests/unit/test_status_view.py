"""The readable form of `musicfs status` for a terminal, within its width."""

from __future__ import annotations

import copy

import pytest

from musicfs.daemon.client import format_status
from musicfs.daemon.terminal import cells

STATUS = {
    "pid": 42,
    "mountpoint": "/srv/music",
    "state": "degraded",
    "tracks": 1200,
    "requests": 10,
    "request_errors": {"read:EIO": 2},
    "reads_in_flight": 0,
    "open_fds": 12,
    "rss_bytes": 50 << 20,
    "rescans": {"completed": 3, "failed": 1},
    "origins": [{"path": "/nas", "state": "offline", "why": "its folder is empty (not mounted?)"}],
    "tasks": [
        {
            "name": "rescans",
            "critical": True,
            "state": "failed",
            "restarts": 4,
            "last_error": "OSError: disk",
            "last_error_at": 1_800_000_000.0,
        },
        {
            "name": "watch:/home/me/Music",
            "critical": False,
            "state": "running",
            "restarts": 0,
            "last_error": None,
            "last_error_at": None,
        },
    ],
    "fault_point_hits": {"scan.apply": 2},
    "recent_problems": [{"time": 1_800_000_000.0, "level": "ERROR", "message": "origin /nas is offline"}],
}


def test_format_status_shows_what_is_wrong() -> None:
    text = format_status(STATUS)
    assert text.startswith("MusicFS pid 42 at /srv/music: degraded\n")
    assert "requests          10 (2 failed)" in text
    assert "offline      /nas (its folder is empty (not mounted?))" in text
    assert "rescans              failed      critical  restarts 4\n    last error at" in text
    assert "OSError: disk" in text and "fault points hit: scan.apply 2" in text
    assert "ERROR   origin /nas is offline" in text


LONG = "/srv/a-folder-with-a-rather-long-name/shared by the whole family/collection/音楽/Music"


@pytest.mark.parametrize("width", [80, 60, 40])
def test_no_line_is_wider_than_the_terminal_and_long_paths_keep_both_ends(width: int) -> None:
    status = copy.deepcopy(STATUS)
    status["origins"].append({"path": LONG, "state": "ok", "why": None})
    status["tasks"][1]["name"] = f"watch:{LONG}"
    status["recent_problems"].append(
        {"time": 1_800_000_000.0, "level": "WARNING", "message": f"cannot read tags of {LONG}/x.mp3 (bad)"}
    )
    lines = format_status(status, width).splitlines()
    assert max(cells(line) for line in lines) <= width, lines
    shown = [line for line in lines if line.startswith("  ok ")]
    assert len(shown) == 1 and "…" in shown[0] and shown[0].startswith("  ok           /srv/"), shown
    assert shown[0].endswith("/Music"), shown
    tasks = [line.split()[0] for line in lines if line.startswith("  watch:")]
    assert len(tasks) == 1 and "…" in tasks[0] and tasks[0].endswith("/Music"), lines
    assert [line for line in lines if line.startswith("  08:00:00 WARNING cannot") and line.endswith("(bad)")]


def test_a_table_that_fits_is_left_whole() -> None:
    assert "…" not in format_status(STATUS, 80)
