"""The real daemon on a real mount with an s3:// origin on a real SeaweedFS (issue 9).

The test writes a tagged library itself (tests/process/albums.py) and uploads it, so it knows each
view path's bytes without asking MusicFS. Covered: the view and its bytes, secrets kept out of the
log, `status`, `metrics` and `user.musicfs.origin`; a rescan that finds an added, a changed and a
removed object; the server frozen with SIGSTOP (a track read once plays from the cache, one never
read gives EIO within the read deadline, `status` says offline and back after SIGCONT); SIGTERM
while the server is frozen exits 0; bad URLs and secret files are one line and exit 2.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.seaweedfs import ACCESS_KEY, SECRET_KEY, upload_tree
from musicfs.demo import DemoLibrary
from tests.conftest import S3Place
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


def _library(place: S3Place, demo: DemoLibrary, folder: Path) -> dict[Path, bytes]:
    """Two albums written locally and uploaded below the place's prefix; view path -> bytes."""
    source = source_flac(demo)
    views = write_album(source, folder / "Lumen" / "Dawn", artist="Lumen", album="Dawn", count=3)
    views |= write_album(source, folder / "Nacht", artist="Nachtzug", album="Tunnel", count=2)
    upload_tree(place.client, place.bucket, place.prefix, folder)
    return {view: origin.read_bytes() for view, origin in views.items()}


def _config(tmp_path: Path, place: S3Place, **extra: object) -> Path:
    secret = tmp_path / "s3.secret"
    secret.write_text(SECRET_KEY + "\n")
    secret.chmod(0o600)
    settings = {
        "health_interval": 0.2,
        "read_timeout": READ_TIMEOUT,
        "poll_interval": 0,
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    lines += [
        "[[origin]]",
        f'url = "{place.url}"',
        f'endpoint = "{place.server.endpoint}"',
        f'access_key_id = "{ACCESS_KEY}"',
        f'secret_access_key_file = "{secret}"',
    ]
    config = tmp_path / "musicfs.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _view(mountpoint: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(mountpoint): path.read_bytes()
        for path in sorted(mountpoint.rglob("*.flac"))
        if path.is_file()
    }


def _origin_state(daemon: DaemonProcess) -> str:
    origin = status_of(daemon.mountpoint)["origins"][0]
    return str(origin["state"])


@pytest.fixture
def s3_library(s3_place: S3Place, demo_library: DemoLibrary, tmp_path: Path) -> dict[Path, bytes]:
    return _library(s3_place, demo_library, tmp_path / "upload")


def test_an_s3_origin_shows_the_uploaded_library_and_never_its_secret(
    s3_place: S3Place, s3_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, s3_place))
    daemon = spawn([], args=["--config", config, "--log-level", "DEBUG"])  # not even at DEBUG
    mnt = daemon.mountpoint
    assert _view(mnt) == s3_library
    track = next(iter(s3_library))
    origin = os.getxattr(mnt / track, "user.musicfs.origin").decode()
    upload = tmp_path / "upload"  # what the test uploaded: the one object with this track's bytes
    (local,) = [p for p in upload.rglob("*.flac") if p.read_bytes() == s3_library[track]]
    assert origin == f"{s3_place.url}/{local.relative_to(upload).as_posix()}"
    status = status_of(mnt)
    assert [o["path"] for o in status["origins"]] == [s3_place.url]
    assert status["state"] == "ready" and status["tracks"] == len(s3_library)
    metrics = musicfs("metrics", str(mnt)).stdout
    tree = musicfs("tree", "--config", config, "--log-level", "DEBUG")
    assert tree.returncode == 0, tree.stderr
    assert sorted(tree.stdout.split("\n")[:-1]) == sorted(str(p) for p in s3_library)
    for text in (daemon.log(), str(status), metrics, tree.stdout, tree.stderr, origin):
        assert SECRET_KEY not in text
    assert "reads are cached" in daemon.log()  # remote origins go through the cache by default
    assert_clean_log(daemon)


def test_a_rescan_finds_an_added_a_changed_and_a_removed_object(
    s3_place: S3Place,
    s3_library: dict[Path, bytes],
    spawn: Spawn,
    tmp_path: Path,
    demo_library: DemoLibrary,
) -> None:
    """Given on the command line, with the credentials and the endpoint in the AWS_* variables."""
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": s3_place.server.endpoint,
        "AWS_REGION": "us-east-1",
    }
    daemon = spawn([], args=["--origin", s3_place.url, "--read-timeout", str(READ_TIMEOUT)], env=env)
    mnt = daemon.mountpoint
    assert _view(mnt) == s3_library
    local = tmp_path / "changes"
    source = source_flac(demo_library)
    added = write_track(source, local / "new.flac", artist="Lumen", album="Dawn", title="Noon", track=4)
    changed = write_track(source, local / "t1.flac", artist="Nachtzug", album="Tunnel", title="Neu", track=1)
    s3_place.client.put_object(
        Bucket=s3_place.bucket,
        Key=s3_place.key("Lumen/Dawn/new.flac"),
        Body=(local / "new.flac").read_bytes(),
    )
    s3_place.client.put_object(
        Bucket=s3_place.bucket, Key=s3_place.key("Nacht/track1.flac"), Body=(local / "t1.flac").read_bytes()
    )
    s3_place.client.delete_object(Bucket=s3_place.bucket, Key=s3_place.key("Lumen/Dawn/track2.flac"))
    done = musicfs("rescan", str(mnt))
    assert done.returncode == 0, done.stderr
    expected = dict(s3_library)
    del expected[Path("Lumen/Dawn/02 Song 2.flac")]
    del expected[Path("Nachtzug/Tunnel/01 Song 1.flac")]
    expected[added] = (local / "new.flac").read_bytes()
    expected[changed] = (local / "t1.flac").read_bytes()
    assert _view(mnt) == expected
    assert "1 new, 1 changed, 1 removed" in daemon.log()
    assert SECRET_KEY not in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.allow_log(
    r"is offline \(no answer within",
    r"open failed: RemoteOrigin\(.*no answer within",
    r"is back; rescanning",
    r"is degraded: \d+ reads timed out",  # when a read times out before the health check runs
)
@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_server_serves_cached_tracks_fails_others_fast_and_comes_back(
    s3_place: S3Place, s3_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, s3_place))])
    mnt = daemon.mountpoint
    played, never_read, read_later = list(s3_library)[:3]
    assert (mnt / played).read_bytes() == s3_library[played]
    wait_until(lambda: status_of(mnt)["cache"]["chunks"] >= 1, "the played track to be cached", daemon.log)

    s3_place.server.freeze()
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / never_read)
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < READ_TIMEOUT + 1.5, "a read must give up at its deadline"
    wait_until(lambda: _origin_state(daemon) == "offline", "the origin to be reported offline", daemon.log)
    assert status_of(mnt)["state"] == "offline"
    assert read_past_the_kernel(mnt / played) == s3_library[played]  # from the verified cache
    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(mnt / read_later)
    assert error.value.errno == errno.EIO and time.monotonic() - started < 1.0  # offline: at once
    assert sorted(p.relative_to(mnt) for p in mnt.rglob("*.flac")) == sorted(s3_library)  # view kept

    s3_place.server.thaw()
    wait_until(lambda: _origin_state(daemon) == "ok", "the origin to be back", daemon.log)
    assert read_past_the_kernel(mnt / read_later) == s3_library[read_later]
    assert SECRET_KEY not in daemon.log()


@pytest.mark.allow_log(r"is offline \(no answer within", r"open failed: RemoteOrigin\(.*no answer within")
@pytest.mark.failure_mode("remote-offline")
def test_sigterm_while_the_server_is_frozen_exits_zero(
    s3_place: S3Place, s3_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    daemon = spawn([], args=["--config", str(_config(tmp_path, s3_place))])
    s3_place.server.freeze()
    reader = subprocess.Popen(  # a read stuck on the frozen server while the daemon stops
        ["cat", str(daemon.mountpoint / next(iter(s3_library)))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(  # the read reached the daemon: the reader waits for its FUSE answer
            lambda: Path(f"/proc/{reader.pid}/wchan").read_text() == "request_wait_answer",
            "the reader's request to reach the daemon",
            daemon.log,
            10,
        )
        started = time.monotonic()
        daemon.signal(15)
        assert daemon.wait_exit(30) == 0
        assert time.monotonic() - started < 15
    finally:
        reader.kill()
        reader.wait(10)
    assert daemon.serving_pid() is None


@pytest.mark.allow_log(
    r"does not answer; waiting up to",
    r"did not answer within .* serving it offline",
    r"is back; rescanning",
    r"open failed: RemoteOrigin\(.*no answer within",
)
@pytest.mark.failure_mode("remote-offline")
def test_a_dead_server_at_start_is_waited_for_only_origin_wait_then_served_offline(
    s3_place: S3Place, s3_library: dict[Path, bytes], spawn: Spawn, tmp_path: Path
) -> None:
    config = _config(tmp_path, s3_place, origin_wait=1.5)
    first = spawn([], args=["--config", str(config)])
    first.signal(15)
    assert first.wait_exit() == 0
    s3_place.server.freeze()
    started = time.monotonic()
    second = spawn([], args=["--config", str(config)])
    assert time.monotonic() - started < 1.5 + READ_TIMEOUT + 5
    assert "did not answer within 1.5 s; serving it offline" in second.log()
    assert _view_names(second.mountpoint) == sorted(s3_library)
    s3_place.server.thaw()
    wait_until(lambda: _origin_state(second) == "ok", "the origin to be back", second.log)
    track = next(iter(s3_library))
    assert (second.mountpoint / track).read_bytes() == s3_library[track]


def _view_names(mountpoint: Path) -> list[Path]:
    return sorted(p.relative_to(mountpoint) for p in mountpoint.rglob("*.flac"))


@pytest.mark.parametrize(
    ("origin", "words"),
    [
        ("s3://Bad_Bucket/music", "is not a valid bucket name"),
        ("s3://key:hunter2@music/x", "holds credentials"),
        ("gopher://host/music", "unknown origin scheme 'gopher'"),
    ],
)
def test_a_bad_origin_url_is_one_line_and_exit_2(tmp_path: Path, origin: str, words: str) -> None:
    (tmp_path / "mnt").mkdir()
    done = musicfs("mount", str(tmp_path / "mnt"), "--origin", origin, "--state-dir", str(tmp_path / "st"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr and "hunter2" not in done.stderr
    assert not (tmp_path / "st").exists()


def test_an_unreadable_secret_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "musicfs.toml"
    config.write_text(
        '[[origin]]\nurl = "s3://music/x"\naccess_key_id = "k"\n'
        f'secret_access_key_file = "{tmp_path / "missing.secret"}"\n'
    )
    done = musicfs("scan", "--config", str(config), "--state-dir", str(tmp_path / "st"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not exist" in done.stderr
