"""Offline playback through the content cache (issue 5): a track read once plays again with its
origin gone, from verified cached chunks; a track never read gives EIO at once."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from tests.process.conftest import Spawn

ALBUM = Path("Sigur Rós") / "Ágætis byrjun (1999)"
NEVER_READ = Path("Björk") / "Homogenic (1997)" / "03 Unravel.flac"


def _status(mountpoint: Path) -> dict[str, object]:
    done = subprocess.run([MUSICFS, "status", str(mountpoint)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    status: dict[str, object] = json.loads(done.stdout)
    return status


def _cache(mountpoint: Path) -> dict[str, int]:
    cache = _status(mountpoint)["cache"]
    assert isinstance(cache, dict)
    return cache


def _until(condition: Callable[[], bool], what: str, log: Callable[[], str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{log()}")


def _read_uncached_by_the_kernel(path: Path) -> bytes:
    """Read through the daemon: drop the kernel's pages of this file first (keep_cache keeps them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while data := os.read(fd, 1 << 17):
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


@pytest.mark.failure_mode("4.2.3")
def test_a_track_played_once_plays_again_with_the_origin_gone(
    library_copy: Path, spawn: Spawn, tmp_path: Path
) -> None:
    config = tmp_path / "musicfs.toml"
    config.write_text(
        f'cache_dir = "{tmp_path / "cache"}"\nhealth_interval = 0.2\n'
        f'[[origin]]\npath = "{library_copy}"\ncache = true\n'
    )
    daemon = spawn([], args=["--config", str(config)])
    album = daemon.mountpoint / ALBUM
    played = {path.name: path.read_bytes() for path in sorted(album.iterdir()) if path.suffix == ".ogg"}
    assert len(played) == 3 and _cache(daemon.mountpoint)["chunks"] >= 3

    library_copy.rename(tmp_path / "nas-away")
    _until(lambda: _status(daemon.mountpoint)["state"] == "offline", "the origin to go offline", daemon.log)
    hits_before = _cache(daemon.mountpoint)["hits"]
    for name, expected in played.items():
        assert _read_uncached_by_the_kernel(album / name) == expected
    assert _cache(daemon.mountpoint)["hits"] >= hits_before + len(played)  # served by the cache

    started = time.monotonic()
    with pytest.raises(OSError) as error:
        _read_uncached_by_the_kernel(daemon.mountpoint / NEVER_READ)
    assert error.value.errno == errno.EIO
    assert time.monotonic() - started < 1.0
    metrics = subprocess.run(
        [MUSICFS, "metrics", str(daemon.mountpoint)], capture_output=True, text=True, timeout=30
    ).stdout
    assert "musicfs_cache_passthrough 0" in metrics and "musicfs_cache_hits_total " in metrics
