"""Offline playback through the content cache (issue 5): a track read once plays again with its
origin gone, from verified cached chunks; a track never read gives EIO at once."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS, DaemonProcess
from chaos.oracle import demo_view
from chaos.plan import FaultPlan, FaultRule
from tests.process.conftest import Spawn, read_past_the_kernel, status_of, wait_until

ALBUM = Path("Sigur Rós") / "Ágætis byrjun (1999)"
NEVER_READ = Path("Björk") / "Homogenic (1997)" / "03 Unravel.flac"


def _state(daemon: DaemonProcess) -> str:
    return str(status_of(daemon.mountpoint)["state"])


def _cache(mountpoint: Path) -> dict[str, int]:
    cache = status_of(mountpoint)["cache"]
    assert isinstance(cache, dict)
    return cache


@pytest.mark.allow_log(r"is offline")
@pytest.mark.failure_mode("4.2.3")
def test_a_track_played_once_plays_again_with_the_origin_gone(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    config = _cached_config(tmp_path, library_copy, tmp_path / "cache")
    daemon = spawn([], args=["--config", str(config)])
    album = daemon.mountpoint / ALBUM
    played = {
        Path(view).name: origin.read_bytes()
        for view, origin in demo_view(library_copy).items()
        if Path(view).parent == ALBUM and view.endswith(".ogg")
    }
    for name, expected in played.items():
        assert (album / name).read_bytes() == expected
    assert len(played) == 3 and _cache(daemon.mountpoint)["chunks"] >= 3

    library_copy.rename(tmp_path / "nas-away")
    wait_until(
        lambda: status_of(daemon.mountpoint)["state"] == "offline", "the origin to go offline", daemon.log
    )
    hits_before = _cache(daemon.mountpoint)["hits"]
    for name, expected in played.items():
        assert read_past_the_kernel(album / name) == expected
    assert _cache(daemon.mountpoint)["hits"] >= hits_before + len(played)  # served by the cache

    started = time.monotonic()
    with pytest.raises(OSError) as error:
        read_past_the_kernel(daemon.mountpoint / NEVER_READ)
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < 1.0
    metrics = subprocess.run(
        [MUSICFS, "metrics", str(daemon.mountpoint)], capture_output=True, text=True, timeout=30
    ).stdout
    assert "musicfs_cache_passthrough 0" in metrics and "musicfs_cache_hits_total " in metrics


def _cached_config(tmp_path: Path, origin: Path, cache_dir: Path) -> Path:
    config = tmp_path / "musicfs.toml"
    config.write_text(
        f'cache_dir = "{cache_dir}"\nhealth_interval = 0.2\n[[origin]]\npath = "{origin}"\ncache = true\n'
    )
    return config


@pytest.mark.allow_log(r"failed verification; quarantined")
@pytest.mark.failure_mode("3.5")
def test_a_flipped_bit_in_the_cache_is_never_served(library_copy: Path, spawn: Spawn, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    config = _cached_config(tmp_path, library_copy, cache_dir)
    first = spawn([], args=["--config", str(config)])
    track = first.mountpoint / ALBUM / "01 Svefn-g-englar.ogg"
    expected = demo_view(library_copy)[str(ALBUM / track.name)].read_bytes()
    assert track.read_bytes() == expected
    first.signal(15)
    assert first.wait_exit() == 0
    chunks = sorted((cache_dir / "chunks").rglob("*"))
    chunk_files = [path for path in chunks if path.is_file()]
    assert chunk_files
    for chunk in chunk_files:  # flip one bit in every chunk
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x10
        chunk.write_bytes(bytes(data))
    second = spawn([], args=["--config", str(config)])
    assert read_past_the_kernel(second.mountpoint / ALBUM / "01 Svefn-g-englar.ogg") == expected
    assert _cache(second.mountpoint)["quarantined"] >= 1


@pytest.mark.allow_log(r"failed verification; quarantined")
@pytest.mark.failure_mode("3.5")
def test_a_flipped_bit_is_never_served_to_random_reads_of_a_cached_track(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    """Reads that do not go on from the last one get only the cache blocks they cover, each checked."""
    cache_dir = tmp_path / "cache"
    config = _cached_config(tmp_path, library_copy, cache_dir)
    first = spawn([], args=["--config", str(config)])
    track = ALBUM / "01 Svefn-g-englar.ogg"
    expected = demo_view(library_copy)[str(track)].read_bytes()
    assert (first.mountpoint / track).read_bytes() == expected
    first.signal(15)
    assert first.wait_exit() == 0
    for chunk in (path for path in (cache_dir / "chunks").rglob("*") if path.is_file()):
        data = bytearray(chunk.read_bytes())
        for offset in range(100, len(data), 16 * 1024):  # a flipped bit in every 16 KiB
            data[offset] ^= 0x04
        chunk.write_bytes(bytes(data))
    second = spawn([], args=["--config", str(config)])
    fd = os.open(second.mountpoint / track, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for offset in reversed(range(0, len(expected), 40_000)):  # never where the last read ended
            assert os.pread(fd, 4096, offset) == expected[offset : offset + 4096], offset
    finally:
        os.close(fd)
    assert _cache(second.mountpoint)["quarantined"] >= 1


@pytest.mark.allow_log(r"cannot read tags of .*big \d+\.flac")
@pytest.mark.failure_mode("2.8")
def test_a_full_cache_disk_never_fails_a_read(tmp_path: Path, spawn: Spawn) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    tracks = {f"big {n}.flac": os.urandom(3 * 2**20 + n) for n in range(3)}  # more than the cache disk
    for name, data in tracks.items():
        (origin / name).write_bytes(data)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(cache_dir)], check=True, timeout=30)
    try:
        daemon = spawn([], args=["--config", str(_cached_config(tmp_path, origin, cache_dir))])
        shown = daemon.mountpoint / "Unknown Artist" / "Unknown Album"
        for _ in range(2):
            for name, data in tracks.items():
                assert read_past_the_kernel(shown / name) == data
        cache = _cache(daemon.mountpoint)
        assert cache["mode"] == "pass-through" or cache["evictions"] > 0
        daemon.signal(15)
        assert daemon.wait_exit() == 0
    finally:
        subprocess.run(["umount", "-l", str(cache_dir)], check=False, timeout=30)


@pytest.mark.allow_log(
    r"the last run did not stop cleanly", r"cleaning a stale fuse.musicfs mount", r"is offline"
)
@pytest.mark.failure_mode("3.5")
def test_kill9_between_write_and_rename_leaves_a_consistent_cache(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    config = _cached_config(tmp_path, library_copy, cache_dir)
    plan = FaultPlan([FaultRule("cache.before_rename", "pause")])
    first = spawn([], args=["--config", str(config)], plan=plan)
    track = first.mountpoint / ALBUM / "02 Starálfur.ogg"
    reader = threading.Thread(target=lambda: _quietly_read(track), daemon=True)
    reader.start()
    first.wait_paused("cache.before_rename")
    assert list((cache_dir / "tmp").iterdir()), "the chunk should be written, not yet renamed"
    first.kill9()
    reader.join(10)

    second = spawn([], args=["--config", str(config)])  # unclean stop: a full check at start
    assert "full check repaired 1" in second.log()
    assert not list((cache_dir / "tmp").iterdir())
    expected = (library_copy / "Music/Sigur Rós/Ágætis byrjun/track2.ogg").read_bytes()
    assert read_past_the_kernel(second.mountpoint / ALBUM / "02 Starálfur.ogg") == expected
    library_copy.rename(tmp_path / "away")  # now served from the cache alone
    wait_until(
        lambda: status_of(second.mountpoint)["state"] == "offline", "the origin to go offline", second.log
    )
    assert read_past_the_kernel(second.mountpoint / ALBUM / "02 Starálfur.ogg") == expected


def _quietly_read(path: Path) -> None:
    with contextlib.suppress(OSError):  # the daemon is killed under this read: the reader gets ENOTCONN
        path.read_bytes()


@pytest.mark.allow_log(
    r"content cache in .* disabled, reading origins directly: ENOENT", r"content cache in .* works again"
)
@pytest.mark.failure_mode("6.2")
def test_a_vanished_cache_dir_gives_pass_through_then_recovers(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    config = _cached_config(tmp_path, library_copy, cache_dir)
    config.write_text("cache_retry = 0.3\n" + config.read_text())
    daemon = spawn([], args=["--config", str(config)])
    album = daemon.mountpoint / ALBUM
    cache_dir.rename(tmp_path / "cache-away")  # the cache disk is unplugged
    expected = (library_copy / "Music/Sigur Rós/Ágætis byrjun/track1.ogg").read_bytes()
    assert read_past_the_kernel(album / "01 Svefn-g-englar.ogg") == expected  # no error: pass-through
    assert _cache(daemon.mountpoint)["mode"] == "pass-through"
    assert status_of(daemon.mountpoint)["state"] == "degraded"

    (tmp_path / "cache-away").rename(cache_dir)
    other = (library_copy / "Music/Sigur Rós/Ágætis byrjun/track2.ogg").read_bytes()

    def cache_used_again() -> bool:  # no timer: the first cache call past cache_retry tries the disk
        assert read_past_the_kernel(album / "02 Starálfur.ogg") == other
        return _cache(daemon.mountpoint)["mode"] == "ok"

    wait_until(cache_used_again, "the cache to be used again", daemon.log)
    assert status_of(daemon.mountpoint)["state"] == "ready"


@pytest.mark.allow_log(r"cannot read tags of .*live set\.flac", r"is offline")
def test_a_track_read_in_part_is_cached_whole_in_the_background(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    big = library_copy / "big live set.flac"
    expected = os.urandom(5 * 2**20 + 123)  # six chunks
    big.write_bytes(expected)
    daemon = spawn([], args=["--config", str(_cached_config(tmp_path, library_copy, tmp_path / "cache"))])
    shown = daemon.mountpoint / "Unknown Artist" / "Unknown Album" / "big live set.flac"
    with open(shown, "rb") as handle:
        assert handle.read(1000) == expected[:1000]  # a player that stopped after the first second
    wait_until(lambda: _cache(daemon.mountpoint)["chunks"] >= 6, "the whole track to be cached", daemon.log)
    library_copy.rename(tmp_path / "away")
    wait_until(
        lambda: status_of(daemon.mountpoint)["state"] == "offline", "the origin to go offline", daemon.log
    )
    assert read_past_the_kernel(shown) == expected


@pytest.mark.failure_mode("2.4")
def test_fsck_finds_and_repairs_and_refuses_a_running_instance(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    daemon = spawn([], args=["--config", str(_cached_config(tmp_path, library_copy, cache_dir))])
    (daemon.mountpoint / ALBUM / "03 Viðrar vel til loftárása.ogg").read_bytes()
    args = ["fsck", "--state-dir", str(tmp_path / "state"), "--cache-dir", str(cache_dir), "--full"]
    busy = subprocess.run([MUSICFS, *args], capture_output=True, text=True, timeout=60)
    assert busy.returncode == 6 and f"pid {daemon.pid}" in busy.stderr
    daemon.signal(15)
    assert daemon.wait_exit() == 0
    chunk = next(path for path in (cache_dir / "chunks").rglob("*") if path.is_file())
    data = bytearray(chunk.read_bytes())
    data[0] ^= 1
    chunk.write_bytes(bytes(data))
    found = subprocess.run([MUSICFS, *args], capture_output=True, text=True, timeout=60)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "index" in found.stdout and "integrity_check ok" in found.stdout
    assert "1 corrupt quarantined" in found.stdout
    clean = subprocess.run([MUSICFS, *args], capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and "no problems found" in clean.stdout
