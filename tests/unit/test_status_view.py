"""The readable form of `musicfs status` for a terminal."""

from __future__ import annotations

from musicfs.daemon.client import format_status

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
    assert "rescans              failed      critical  restarts 4  last error at" in text
    assert "OSError: disk" in text and "fault points hit: scan.apply 2" in text
    assert "ERROR   origin /nas is offline" in text
