"""The real daemon on a real mount with an sftp:// origin on a real OpenSSH sshd (issue 9).

The test writes a tagged library itself (tests/process/albums.py) into the folder sshd serves, so it
knows each view path's bytes without asking MusicFS. Covered: the view and its bytes, the key's
passphrase and contents kept out of the log, `status`, `metrics`, `tree` and `user.musicfs.origin`;
a rescan that finds an added, a changed and a removed file; sshd frozen with SIGSTOP (a track read
once plays from the cache, one never read gives EIO within the read deadline, `status` says offline
and back after SIGCONT); SIGTERM while it is frozen exits 0; sshd killed and started again: reads
recover by themselves; an unknown host key refused with one line, the origin served offline.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.sshd import PASSPHRASE, Sshd
from musicfs.demo import DemoLibrary
from tests.process.albums import source_flac, write_album, write_track
from tests.process.conftest import (
    Spawn,
    assert_clean_log,
    musicfs,
    read_past_the_kernel,
    status_of,
    wait_until,
)

READ_TIMEOUT = 2.0


def _library(demo: DemoLibrary, root: Path) -> dict[Path, bytes]:
    """Two albums written into the served folder; view path -> bytes."""
    source = source_flac(demo)
    views = write_album(source, root / "Lumen" / "Dawn", artist="Lumen", album="Dawn", count=3)
    views |= write_album(source, root / "Nacht", artist="Nachtzug", album="Tunnel", count=2)
    return {view: origin.read_bytes() for view, origin in views.items()}


def _config(
    tmp_path: Path, server: Sshd, root: Path, known_hosts: Path | None = None, **extra: object
) -> Path:
    phrase = tmp_path / "key.pass"
    phrase.write_text(PASSPHRASE + "\n")
    phrase.chmod(0o600)
    settings = {
        "health_interval": 0.2,
        "read_timeout": READ_TIMEOUT,
        "poll_interval": 0,
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
    lines += [
        "[[origin]]",
        f'url = "{server.url(root)}"',
        f'identity_file = "{server.identity_file}"',
        f'known_hosts = "{known_hosts or server.known_hosts}"',
        f'passphrase_file = "{phrase}"',
    ]
    config = tmp_path / "musicfs.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _view(mountpoint: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(mountpoint): path.read_bytes()
        for path in sorted(mountpoint.rglob("*.flac"))
        if path.is_file()
    }


def _origin_state(daemon: DaemonProcess) -> str:
    return str(status_of(daemon.mountpoint)["origins"][0]["state"])


@pytest.fixture
def served(tmp_path: Path) -> Path:
    return tmp_path / "served"


@pytest.fixture
def sftp_library(demo_library: DemoLibrary, served: Path) -> dict[Path, bytes]:
    return _library(demo_library, served)


def test_an_sftp_origin_shows_the_library_and_never_its_key(
    sshd: Sshd, served: Path, sftp_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, sshd, served))
    daemon = spawn([], args=["--config", config, "--log-level", "DEBUG"])  # not even at DEBUG
    mnt = daemon.mountpoint
    assert _view(mnt) == sftp_library
    track = next(iter(sftp_library))
    origin = os.getxattr(mnt / track, "user.musicfs.origin").decode()
    assert origin.startswith(sshd.url(served) + "/") and origin.endswith(".flac")
    status = status_of(mnt)
    assert [o["path"] for o in status["origins"]] == [sshd.url(served)]
    assert status["state"] == "ready" and status["tracks"] == len(sftp_library)
    metrics = musicfs("metrics", str(mnt)).stdout
    tree = musicfs("tree", "--config", config, "--log-level", "DEBUG")
    assert tree.returncode == 0, tree.stderr
    assert sorted(tree.stdout.split("\n")[:-1]) == sorted(str(p) for p in sftp_library)
    key_body = sshd.identity_file.read_text().splitlines()[1]  # a line of the private key's contents
    for text in (daemon.log(), str(status), metrics, tree.stdout, tree.stderr, origin):
        assert PASSPHRASE not in text and key_body not in text
    assert "reads are cached" in daemon.log()
    assert len(sshd.log().split("Accepted publickey for ")) - 1 == 2  # the daemon and the tree: one each
    assert_clean_log(daemon)


def test_a_rescan_finds_an_added_a_changed_and_a_removed_file(
    sshd: Sshd,
    served: Path,
    sftp_library: dict[Path, bytes],
    spawn: Spawn,
    tmp_path: Path,
    demo_library: DemoLibrary,
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, sshd, served))])
    mnt = daemon.mountpoint
    assert _view(mnt) == sftp_library
    source = source_flac(demo_library)
    added = write_track(
        source, served / "Lumen/Dawn/new.flac", artist="Lumen", album="Dawn", title="Noon", track=4
    )
    changed_file = served / "Nacht/track1.flac"
    before = changed_file.stat().st_mtime
    changed = write_track(source, changed_file, artist="Nachtzug", album="Tunnel", title="Neu", track=1)
    os.utime(changed_file, (before + 10, before + 10))  # a new mtime even within the same second
    (served / "Lumen/Dawn/track2.flac").unlink()
    done = musicfs("rescan", str(mnt))
    assert done.returncode == 0, done.stderr
    expected = dict(sftp_library)
    del expected[Path("Lumen/Dawn/02 Song 2.flac")]
    del expected[Path("Nachtzug/Tunnel/01 Song 1.flac")]
    expected[added] = (served / "Lumen/Dawn/new.flac").read_bytes()
    expected[changed] = changed_file.read_bytes()
    assert _view(mnt) == expected
    assert "1 new, 1 changed, 1 removed" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.allow_log(
    r"is offline \(.*(no answer within|Unable to open channel|timed out|SSH protocol banner|EOFError)",
    r"open failed: .*(no answer within|failed \d+ times)",
    r"is back; rescanning",
    r"is degraded: \d+ reads timed out",  # when a read times out before the health check runs
)
@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_sshd_serves_cached_tracks_fails_others_fast_and_comes_back(
    sshd: Sshd, served: Path, sftp_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, sshd, served))])
    mnt = daemon.mountpoint
    played, never_read, read_later = list(sftp_library)[:3]
    assert (mnt / played).read_bytes() == sftp_library[played]
    wait_until(lambda: status_of(mnt)["cache"]["chunks"] >= 1, "the played track to be cached", daemon.log)

    sshd.freeze()
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / never_read)
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < READ_TIMEOUT + 1.5, "a read must give up at its deadline"
    wait_until(lambda: _origin_state(daemon) == "offline", "the origin to be reported offline", daemon.log)
    assert status_of(mnt)["state"] == "offline"
    assert read_past_the_kernel(mnt / played) == sftp_library[played]  # from the verified cache
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / read_later)
    assert error.value.errno == errno.EIO and time.monotonic() - started < 1.0  # offline: at once
    assert sorted(p.relative_to(mnt) for p in mnt.rglob("*.flac")) == sorted(sftp_library)

    sshd.thaw()
    wait_until(lambda: _origin_state(daemon) == "ok", "the origin to be back", daemon.log)
    assert read_past_the_kernel(mnt / read_later) == sftp_library[read_later]


@pytest.mark.allow_log(
    r"is offline \(.*(no answer within|Unable to open channel|timed out|reading SSH protocol banner)",
    r"open failed: .*(no answer within|failed \d+ times)",
)
@pytest.mark.failure_mode("remote-offline")
def test_sigterm_while_sshd_is_frozen_exits_zero(
    sshd: Sshd, served: Path, sftp_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, sshd, served))])
    sshd.freeze()
    reader = subprocess.Popen(  # a read stuck on the frozen server while the daemon stops
        ["cat", str(daemon.mountpoint / next(iter(sftp_library)))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)  # the read is under way (its EIO or its data do not matter here)
        started = time.monotonic()
        daemon.signal(15)
        assert daemon.wait_exit(30) == 0
        assert time.monotonic() - started < 15
    finally:
        reader.kill()
        reader.wait(10)
    assert daemon.serving_pid() is None


@pytest.mark.allow_log(
    r"is offline \(.*(Unable to connect to port|Unable to open channel|EOFError|reset by peer|closed)",
    r"open failed: .*failed \d+ times: .*(Unable to connect to port|EOFError|reset by peer|closed)",
    r"is back; rescanning",
)
@pytest.mark.failure_mode("remote-flaky")
def test_a_killed_and_restarted_sshd_is_read_again_by_itself(
    sshd: Sshd, served: Path, sftp_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, sshd, served))])
    mnt = daemon.mountpoint
    played, never_read = list(sftp_library)[:2]
    assert (mnt / played).read_bytes() == sftp_library[played]
    wait_until(lambda: status_of(mnt)["cache"]["chunks"] >= 1, "the played track to be cached", daemon.log)
    sshd.kill()
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / never_read)
    assert error.value.errno == errno.EIO and time.monotonic() - started < READ_TIMEOUT + 1.5
    assert read_past_the_kernel(mnt / played) == sftp_library[played]
    sshd.start()
    wait_until(lambda: _origin_state(daemon) == "ok", "the origin to be back", daemon.log)
    assert read_past_the_kernel(mnt / never_read) == sftp_library[never_read]


@pytest.mark.allow_log(
    r"unavailable \(.*the host key of \[127\.0\.0\.1\]:\d+ .* is not in .*known_hosts",
    r"did not appear within .* serving it offline",
)
def test_an_unknown_host_key_is_refused_with_one_line(
    sshd: Sshd, served: Path, sftp_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    daemon = spawn([], args=["--config", str(_config(tmp_path, sshd, served, empty, origin_wait=1))])
    time.sleep(1.0)  # health checks every 0.2 s ask again: the refusal is still said once
    said = [line for line in daemon.log().splitlines() if "host key" in line]
    assert all(str(empty) in line and sshd.host_key_fingerprint() in line for line in said)
    warned = [line for line in said if " WARNING " in line or " ERROR " in line]
    assert len(warned) == 1, daemon.log()  # one clear line, however often the health check asks
    assert _origin_state(daemon) == "offline"
    assert not _view(daemon.mountpoint)  # nothing was ever read from a server not known
    assert "Accepted publickey" not in sshd.log()


@pytest.mark.parametrize(
    ("passphrase", "words"),
    [
        ("not-the-passphrase", "wrong passphrase"),
        (None, "is encrypted: give its passphrase in passphrase_file"),
    ],
)
def test_a_wrong_or_missing_passphrase_is_one_line_and_exit_2(
    sshd: Sshd, served: Path, tmp_path: Path, passphrase: str | None, words: str
) -> None:
    config = _config(tmp_path, sshd, served)
    if passphrase is None:
        config.write_text(
            "".join(line for line in config.read_text().splitlines(True) if "passphrase" not in line)
        )
    else:
        (tmp_path / "key.pass").write_text(passphrase + "\n")
    (tmp_path / "mnt").mkdir()
    done = musicfs(
        "mount", str(tmp_path / "mnt"), "--config", str(config), "--state-dir", str(tmp_path / "st")
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr and str(sshd.identity_file) in done.stderr
    assert "not-the-passphrase" not in done.stderr and PASSPHRASE not in done.stderr
