"""dist/musicfs.service: systemd accepts it, and the directives the daemon's behaviour relies on are set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "dist" / "musicfs.service"


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.failure_mode("2.10")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    musicfs = Path(sys.executable).with_name("musicfs")
    unit = tmp_path / "musicfs.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/musicfs", str(musicfs)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "musicfs.service" not in done.stderr, done.stderr


@pytest.mark.failure_mode("2.10")
def test_directives_the_behaviour_depends_on() -> None:
    service = _service()
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["ExecStopPost"] == ["-/usr/bin/fusermount3 -u -z ${MOUNTPOINT}"]
    assert service["Restart"] == ["on-failure"]
    assert int(service["LimitNOFILE"][0]) >= 4096
    assert service["MemoryHigh"] == ["768M"] and service["MemoryMax"] == ["1G"]
    assert service["WatchdogSec"] == ["60s"]
    assert service["TimeoutStopSec"] == ["30s"]
    hiding = {
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ReadOnlyPaths",
    }
    assert not hiding & service.keys(), "these create a mount namespace that hides the FUSE mount"
