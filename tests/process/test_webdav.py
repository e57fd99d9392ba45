"""The real daemon on a real mount with a webdav+http:// origin on a real WsgiDAV server (issue 9).

The test writes a tagged library itself (tests/process/albums.py) into the served folder, so it knows
each view path's bytes without asking MusicFS. Covered: the view and its bytes, the password kept
out of the log, `status`, `metrics`, `tree` and the xattrs; a rescan that finds an added, a changed
and a removed file; the server frozen with SIGSTOP (a track read once plays from the cache, one never
read gives EIO within the read deadline, `status` says offline and back after SIGCONT); SIGTERM while
it is frozen exits 0; the server killed and started again (reads recover by themselves); a wrong
password is one clear line (a scan keeps what the index knows, as for any origin that says no).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.webdavd import PASSWORD, USERNAME, WebDAVServer
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


@pytest.fixture
def library(webdav_server: WebDAVServer, demo_library: DemoLibrary) -> dict[Path, bytes]:
    """Two albums written into the served folder below `lib`; view path -> bytes."""
    folder = webdav_server.root / "lib"
    source = source_flac(demo_library)
    views = write_album(source, folder / "Lumen" / "Dawn", artist="Lumen", album="Dawn", count=3)
    views |= write_album(source, folder / "Nacht", artist="Nachtzug", album="Tunnel", count=2)
    return {view: origin.read_bytes() for view, origin in views.items()}


def _config(tmp_path: Path, server: WebDAVServer, password: str = PASSWORD, **extra: object) -> Path:
    secret = tmp_path / "webdav.pass"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
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
        f'url = "{server.url("lib")}"',
        f'username = "{USERNAME}"',
        f'password_file = "{secret}"',
    ]
    config = tmp_path / "musicfs.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _view(mountpoint: Path) -> dict[Path, bytes]:
    return {p.relative_to(mountpoint): p.read_bytes() for p in sorted(mountpoint.rglob("*.flac"))}


def _origin_state(daemon: DaemonProcess) -> str:
    return str(status_of(daemon.mountpoint)["origins"][0]["state"])


def test_a_webdav_origin_shows_the_library_and_never_its_password(
    webdav_server: WebDAVServer, library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, webdav_server))
    daemon = spawn([], args=["--config", config, "--log-level", "DEBUG"])  # not even at DEBUG
    mnt = daemon.mountpoint
    assert _view(mnt) == library
    url = webdav_server.url("lib")
    track = mnt / next(iter(library))
    xattrs = [os.getxattr(track, name).decode(errors="replace") for name in os.listxattr(track)]
    assert any(value.startswith(url + "/") and value.endswith(".flac") for value in xattrs)
    status = status_of(mnt)
    assert [o["path"] for o in status["origins"]] == [url]
    assert status["state"] == "ready" and status["tracks"] == len(library)
    metrics = musicfs("metrics", str(mnt)).stdout
    tree = musicfs("tree", "--config", config, "--log-level", "DEBUG")
    assert tree.returncode == 0, tree.stderr
    assert sorted(tree.stdout.split("\n")[:-1]) == sorted(str(p) for p in library)
    for text in (daemon.log(), str(status), metrics, tree.stdout, tree.stderr, *xattrs):
        assert PASSWORD not in text
    assert "reads are cached" in daemon.log()
    assert_clean_log(daemon)


def test_a_rescan_finds_an_added_a_changed_and_a_removed_file(
    webdav_server: WebDAVServer,
    library: dict[Path, bytes],
    spawn: Spawn,
    tmp_path: Path,
    demo_library: DemoLibrary,
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, webdav_server))])
    mnt = daemon.mountpoint
    assert _view(mnt) == library
    folder = webdav_server.root / "lib"
    source = source_flac(demo_library)
    new = folder / "Lumen/Dawn/new.flac"
    added = write_track(source, new, artist="Lumen", album="Dawn", title="Noon", track=4)
    changed_path = folder / "Nacht/track1.flac"
    changed = write_track(source, changed_path, artist="Nachtzug", album="Tunnel", title="Neu", track=1)
    later = time.time() + 2  # edited after the scan, as a real edit is (the server's ETag has seconds)
    os.utime(changed_path, (later, later))
    (folder / "Lumen/Dawn/track2.flac").unlink()
    done = musicfs("rescan", str(mnt))
    assert done.returncode == 0, done.stderr
    expected = dict(library)
    del expected[Path("Lumen/Dawn/02 Song 2.flac")]
    del expected[Path("Nachtzug/Tunnel/01 Song 1.flac")]
    expected[added] = new.read_bytes()
    expected[changed] = changed_path.read_bytes()
    assert _view(mnt) == expected
    assert "1 new, 1 changed, 1 removed" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.allow_log(
    r"is offline \(no answer within",
    r"open failed: RemoteOrigin\(.*no answer within",
    r"is back; rescanning",
    r"is degraded: \d+ reads timed out",
)
@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_server_serves_cached_tracks_fails_others_fast_and_comes_back(
    webdav_server: WebDAVServer, library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, webdav_server))])
    mnt = daemon.mountpoint
    played, never_read, read_later = list(library)[:3]
    assert (mnt / played).read_bytes() == library[played]
    wait_until(lambda: status_of(mnt)["cache"]["chunks"] >= 1, "the played track to be cached", daemon.log)

    webdav_server.freeze()
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / never_read)
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < READ_TIMEOUT + 1.5, "a read must give up at its deadline"
    wait_until(lambda: _origin_state(daemon) == "offline", "the origin to be reported offline", daemon.log)
    assert read_past_the_kernel(mnt / played) == library[played]  # from the verified cache
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / read_later)
    assert error.value.errno == errno.EIO and time.monotonic() - started < 1.0  # offline: at once

    webdav_server.thaw()
    wait_until(lambda: _origin_state(daemon) == "ok", "the origin to be back", daemon.log)
    assert read_past_the_kernel(mnt / read_later) == library[read_later]


@pytest.mark.allow_log(r"is offline \(no answer within", r"open failed: RemoteOrigin\(.*no answer within")
@pytest.mark.failure_mode("remote-offline")
def test_sigterm_while_the_server_is_frozen_exits_zero(
    webdav_server: WebDAVServer, library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, webdav_server))])
    webdav_server.freeze()
    reader = subprocess.Popen(  # a read stuck on the frozen server while the daemon stops
        ["cat", str(daemon.mountpoint / next(iter(library)))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        started = time.monotonic()
        daemon.signal(15)
        assert daemon.wait_exit(30) == 0
        assert time.monotonic() - started < 15
    finally:
        reader.kill()
        reader.wait(10)
    assert daemon.serving_pid() is None


@pytest.mark.allow_log(
    r"is offline \(",
    r"open failed: webdav\+http://.*: stat failed \d+ times: stat of .*Connection refused",
    r"is back; rescanning",
    r"is degraded: \d+ reads",
)
@pytest.mark.failure_mode("remote-offline")
def test_a_server_killed_and_started_again_is_read_again(
    webdav_server: WebDAVServer, library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, webdav_server))])
    mnt = daemon.mountpoint
    first, second = list(library)[:2]
    assert (mnt / first).read_bytes() == library[first]
    webdav_server.kill()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / second)
    assert error.value.errno == errno.EIO
    wait_until(lambda: _origin_state(daemon) == "offline", "the origin to be reported offline", daemon.log)
    webdav_server.restart()
    wait_until(lambda: _origin_state(daemon) == "ok", "the origin to be back", daemon.log)
    assert read_past_the_kernel(mnt / second) == library[second]
    assert _view(mnt) == library


def test_a_wrong_password_is_one_clear_line(
    webdav_server: WebDAVServer, library: dict[Path, bytes], tmp_path: Path
) -> None:
    config = _config(tmp_path, webdav_server, password="not-the-password")
    done = musicfs("scan", "--config", str(config), "--state-dir", str(tmp_path / "st"))
    problems = [line for line in done.stderr.splitlines() if " WARNING " in line or " ERROR " in line]
    assert len(problems) == 1, done.stderr
    assert "access denied (401): check username and password_file" in problems[0]
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr + done.stdout
