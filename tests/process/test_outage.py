"""An origin that vanishes and comes back (4.2.3, 4.2.4, origin-vanished): the tree stays, reads of
its files fail fast with EIO, status says offline, and everything works again without a restart."""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from tests.process.conftest import Spawn, status_of, wait_until

TRACK = Path("Sigur Rós") / "Ágætis byrjun (1999)" / "02 Starálfur.ogg"


@pytest.mark.allow_log(r"is offline", r"is back; rescanning")
@pytest.mark.failure_mode("origin-vanished")
@pytest.mark.failure_mode("4.2.3")
def test_origin_renamed_away_and_back(library_copy: Path, spawn: Spawn, tmp_path: Path) -> None:
    config = tmp_path / "musicfs.toml"
    config.write_text("health_interval = 0.2\n")
    daemon = spawn([library_copy], args=["--config", str(config)])
    mnt = daemon.mountpoint
    names_before = sorted(p.name for p in (mnt / "Sigur Rós").iterdir())

    away = tmp_path / "away"
    library_copy.rename(away)
    wait_until(lambda: status_of(mnt)["state"] == "offline", "the origin to be reported offline", daemon.log)
    assert sorted(p.name for p in (mnt / "Sigur Rós").iterdir()) == names_before  # the view is kept
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        (mnt / TRACK).read_bytes()
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < 1.0, "an offline origin must fail fast"
    assert "is offline" in daemon.log()

    away.rename(library_copy)
    wait_until(lambda: status_of(mnt)["state"] == "ready", "the origin to be back", daemon.log)
    wait_until(
        lambda: "rescan (origin back) finished" in daemon.log(), "the rescan after the return", daemon.log
    )
    assert (mnt / TRACK).read_bytes() == (
        library_copy / "Music/Sigur Rós/Ágætis byrjun/track2.ogg"
    ).read_bytes()
    assert sorted(p.name for p in (mnt / "Sigur Rós").iterdir()) == names_before


@pytest.mark.allow_log(
    r"is missing; serving what the index knows",
    r"did not appear within .* serving it offline",
    r"unavailable \(.*No such file or directory\); known files kept",
    r"is back; rescanning",
)
@pytest.mark.failure_mode("origin-vanished")
def test_known_origin_missing_at_start_is_served_offline_then_recovers(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    config = tmp_path / "musicfs.toml"
    config.write_text("health_interval = 0.2\norigin_wait = 0.5\n")
    first = spawn([library_copy], args=["--config", str(config)])
    first.signal(15)
    assert first.wait_exit() == 0
    away = tmp_path / "away"
    library_copy.rename(away)  # the NAS is not mounted at the next boot
    second = spawn([library_copy], args=["--config", str(config)])
    assert "did not appear within 0.5 s; serving it offline" in second.log()
    assert status_of(second.mountpoint)["state"] == "offline"
    assert (second.mountpoint / "Sigur Rós").is_dir()
    away.rename(library_copy)
    wait_until(lambda: status_of(second.mountpoint)["state"] == "ready", "the origin to appear", second.log)
    assert (second.mountpoint / TRACK).read_bytes() == (
        library_copy / "Music/Sigur Rós/Ágætis byrjun/track2.ogg"
    ).read_bytes()


def test_unknown_missing_origin_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    done = subprocess.run(
        [
            MUSICFS,
            "mount",
            str(tmp_path / "mnt"),
            "--origin",
            str(tmp_path / "typo"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "does not exist" in done.stderr
