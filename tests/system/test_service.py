"""dist/musicfs.service under a real systemd 252 (Debian 12): start, status, watchdog, crashes, stops.

Each test boots its own machine (`conftest.py`), with MusicFS installed by the README's set-up
command from this checkout and the unit installed as the README says.
"""

from __future__ import annotations

import pytest

from tests.system.machine import MOUNTPOINT, TRACK, TRACK_COUNT, UNIT, MusicfsMachine


@pytest.mark.failure_mode("2.10")
def test_start_returns_active_only_once_a_track_reads(service: MusicfsMachine) -> None:
    # `systemctl start` of a Type=notify unit returns at READY=1: the read right after it must work.
    done = service.container.run(
        ["sh", "-c", f"systemctl start {UNIT} && systemctl is-active {UNIT} && cat '{MOUNTPOINT}/{TRACK}'"]
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace") + service.journal()
    state, _, data = done.stdout.partition(b"\n")
    assert state == b"active"
    assert data == service.expected()
    assert service.show("StatusText")["StatusText"] == f"serving {TRACK_COUNT} tracks"
