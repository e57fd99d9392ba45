"""dist/: systemd accepts musicfs.service and the player drop-in, and the directives they rely on are set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DIST = Path(__file__).resolve().parents[2] / "dist"
UNIT = DIST / "musicfs.service"
PLAYER_DROP_IN = DIST / "mpd.service.d" / "musicfs.conf"
DEBIAN_MPD_UNIT = Path("/lib/systemd/system/mpd.service")


def _section(path: Path, wanted: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == wanted:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _service() -> dict[str, list[str]]:
    return _section(UNIT, "[Service]")


def _analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    return analyze


def _install_musicfs_unit(folder: Path) -> None:
    """dist/musicfs.service into `folder`, its ExecStart naming the musicfs of this virtualenv."""
    musicfs = Path(sys.executable).with_name("musicfs")
    (folder / "musicfs.service").write_text(UNIT.read_text().replace("/usr/local/bin/musicfs", str(musicfs)))


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # --man=no: Documentation=man:... pages are looked up with man(1), which a fresh Debian lacks
    # (the tests/system fresh machine found it); whether the pages exist is not this unit's business.
    return subprocess.run(
        [_analyze(), "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.failure_mode("2.10")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    _install_musicfs_unit(tmp_path)
    done = _verify(tmp_path / "musicfs.service")
    assert done.returncode == 0, done.stderr
    assert "musicfs.service" not in done.stderr, done.stderr


@pytest.mark.failure_mode("2.10")
def test_directives_the_behaviour_depends_on() -> None:
    service = _service()
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecReload"] == ["/usr/local/bin/musicfs rescan ${MOUNTPOINT}"]  # waits for the rescan
    (stop_post,) = service["ExecStopPost"]
    assert stop_post.startswith("-/bin/sh -c ") and "fusermount3 -u -z" in stop_post
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a bad config: no restart loop
    assert _section(UNIT, "[Unit]")["StartLimitIntervalSec"] == ["0"]  # a crash loop is never final
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


def _player_with_drop_in(folder: Path, drop_in: str) -> Path:
    """Debian's real mpd.service in `folder` with `drop_in` as mpd.service.d/musicfs.conf beside it."""
    assert DEBIAN_MPD_UNIT.is_file(), f"{DEBIAN_MPD_UNIT} is missing: install Debian's mpd package"
    unit = folder / "mpd.service"
    unit.write_text(DEBIAN_MPD_UNIT.read_text())
    (folder / "mpd.service.d").mkdir()
    (folder / "mpd.service.d" / "musicfs.conf").write_text(drop_in)
    return unit


@pytest.mark.failure_mode("7.3")
def test_systemd_analyze_verify_accepts_the_player_drop_in_on_debians_mpd_unit(tmp_path: Path) -> None:
    _install_musicfs_unit(tmp_path)
    done = _verify(_player_with_drop_in(tmp_path, PLAYER_DROP_IN.read_text()))
    assert done.returncode == 0, done.stderr
    assert "musicfs" not in done.stderr, done.stderr


@pytest.mark.failure_mode("7.3")
def test_systemd_analyze_verify_reads_drop_ins_beside_the_unit(tmp_path: Path) -> None:
    # The control for the test above: verify does read mpd.service.d/ from there, so its silence
    # about the real drop-in means systemd accepted it.
    _install_musicfs_unit(tmp_path)
    done = _verify(_player_with_drop_in(tmp_path, PLAYER_DROP_IN.read_text() + "NoSuchDirective=1\n"))
    assert "musicfs.conf" in done.stderr and "NoSuchDirective" in done.stderr, done.stderr


@pytest.mark.failure_mode("7.3")
def test_the_drop_in_orders_the_player_after_musicfs_without_binding_to_it() -> None:
    unit = _section(PLAYER_DROP_IN, "[Unit]")
    assert unit == {"Requires": ["musicfs.service"], "After": ["musicfs.service"]}
    # BindsTo= would stop the player on every crash and leave it stopped after Restart= (see the file).
    assert _service()["Restart"] == ["on-failure"]


SERVICE_DROP_INS = DIST / "musicfs.service.d"
# Options that, in a service with User= other than root, imply NoNewPrivileges=yes (systemd.exec(5)):
# the setuid fusermount3 then cannot mount.
IMPLY_NO_NEW_PRIVILEGES = {
    "NoNewPrivileges",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "RestrictAddressFamilies",
    "LockPersonality",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "MemoryDenyWriteExecute",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectClock",
    "ProtectHostname",
    "PrivateDevices",
}


@pytest.mark.failure_mode("2.10")
@pytest.mark.parametrize("drop_in", ["checkout.conf", "nonroot.conf"])
def test_systemd_analyze_verify_accepts_the_units_drop_ins(tmp_path: Path, drop_in: str) -> None:
    _install_musicfs_unit(tmp_path)
    (tmp_path / "musicfs.service.d").mkdir()
    text = (SERVICE_DROP_INS / drop_in).read_text()
    # verify checks that commands exist: the checkout's musicfs is this virtualenv's here.
    text = text.replace("/opt/musicfs/.venv/bin/musicfs", str(Path(sys.executable).with_name("musicfs")))
    (tmp_path / "musicfs.service.d" / drop_in).write_text(text)
    done = _verify(tmp_path / "musicfs.service")
    assert done.returncode == 0, done.stderr
    assert "musicfs" not in done.stderr, done.stderr


@pytest.mark.failure_mode("2.10")
def test_the_non_root_drop_in_resets_every_option_that_forbids_setuid_fusermount3() -> None:
    used = IMPLY_NO_NEW_PRIVILEGES & _service().keys()
    reset = _section(SERVICE_DROP_INS / "nonroot.conf", "[Service]")
    assert used, "the unit's hardening changed: update IMPLY_NO_NEW_PRIVILEGES"
    for option in sorted(used):
        assert reset.get(option) in ([""], ["no"]), f"nonroot.conf must reset {option}="
    assert reset["User"] == ["musicfs"]


@pytest.mark.failure_mode("2.10")
def test_systemd_analyze_verify_accepts_the_user_unit(tmp_path: Path) -> None:
    musicfs = Path(sys.executable).with_name("musicfs")
    unit = tmp_path / "units" / "musicfs.service"
    unit.parent.mkdir()
    unit.write_text(
        (DIST / "musicfs-user.service").read_text().replace("%h/.local/bin/musicfs", str(musicfs))
    )
    runtime = tmp_path / "runtime"  # a user manager's runtime folder, which verify --user needs
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        [_analyze(), "--user", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    assert done.returncode == 0, done.stderr
    assert "musicfs.service" not in done.stderr, done.stderr
