"""Issue 8.9 (7.4, 6.2): a cache disk that hangs. The cache folder is a bindfs mount of a real folder,
and the test stops that bindfs (its own process, by PID) with SIGSTOP: every request to the cache
disk then waits, as on a frozen USB disk or NAS. The daemon must notice within one deadline, read the
origins directly (pass-through), say so in `musicfs status`, use the cache again once the disk
answers (`cache_retry`), start while it is frozen, and stop within its drain deadline while it is
still frozen. The right bytes are the test's own origin files, never asked of the daemon."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from chaos.bindfs import Bindfs
from chaos.daemon import DaemonProcess
from chaos.freeze import thread_states
from chaos.mountinfo import mount_at
from tests.process.conftest import (
    MountBindfs,
    Spawn,
    assert_clean_log,
    read_past_the_kernel,
    status_of,
    wait_until,
)

READ_TIMEOUT = 8.0  # the cache's deadline is half of it: 4 s, well apart from a pass-through read
DRAIN_TIMEOUT = 2.0
CACHE_RETRY = 0.5
TRACKS = 6
SHOWN = Path("Unknown Artist") / "Unknown Album"  # untagged files: where the default template shows them
FIRST_READ_WITHIN = READ_TIMEOUT + 3.0  # one cache deadline, then the origin's bytes
PASS_THROUGH_READ_WITHIN = 3.0  # 3 MiB from a local origin, no cache deadline in the way (even loaded)
EXIT_WITHIN = DRAIN_TIMEOUT + 5.0
READY_WITHIN = 20.0  # the preflight's deadline for the cache folder, the cache's, and mounting
DISABLED = "content cache in {} disabled, reading origins directly"


def _tracks(origin: Path) -> dict[str, bytes]:
    """Untaggable tracks of four chunks each, written by the test: the bytes every read must give."""
    origin.mkdir()
    tracks = {f"track {n}.flac": os.urandom(3 * 2**20 + 1000 + n) for n in range(TRACKS)}
    for name, data in tracks.items():
        (origin / name).write_bytes(data)
    return tracks


def _config(tmp_path: Path, origin: Path, cache_dir: Path) -> Path:
    config = tmp_path / "musicfs.toml"
    config.write_text(
        f'cache_dir = "{cache_dir}"\nread_timeout = {READ_TIMEOUT}\ndrain_timeout = {DRAIN_TIMEOUT}\n'
        f"cache_retry = {CACHE_RETRY}\nhealth_interval = 0.5\n"
        f'[[origin]]\npath = "{origin}"\ncache = true\n'
    )
    return config


def _read(path: Path) -> tuple[bytes, float]:
    """Read through the daemon (the kernel's pages of the file dropped first); the bytes and seconds."""
    started = time.monotonic()
    data = read_past_the_kernel(path)
    return data, time.monotonic() - started


def _cache(daemon: DaemonProcess) -> dict[str, object]:
    cache = status_of(daemon.mountpoint)["cache"]
    assert isinstance(cache, dict)
    return cache


def _stopped(disk: Bindfs) -> bool:
    """Whether the test's bindfs is still stopped by SIGSTOP."""
    return all(state in "Tt" for state in thread_states(disk.pid))


def _cache_disk(tmp_path: Path, bindfs: MountBindfs) -> Bindfs:
    (tmp_path / "cache-disk").mkdir()
    return bindfs(tmp_path / "cache-disk", tmp_path / "cache")


def _stop_within_bound(daemon: DaemonProcess, disk: Bindfs) -> None:
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(EXIT_WITHIN + 20) == 0
    took = time.monotonic() - started
    assert took < EXIT_WITHIN, f"the exit took {took:.1f} s with the cache disk frozen:\n{daemon.log()}"
    assert mount_at(daemon.mountpoint) is None
    assert _stopped(disk), "the cache disk must still be frozen while the daemon exits"


@pytest.mark.allow_log(
    r"cannot read tags of .* \d+\.flac \(FLACNoHeaderError",
    r"content cache in .* disabled, reading origins directly: the cache disk did not answer",
)
@pytest.mark.failure_mode("cache-hung")
def test_a_cache_disk_that_hangs_is_passed_through_and_never_delays_the_exit(
    tmp_path: Path, spawn: Spawn, bindfs: MountBindfs
) -> None:
    tracks = _tracks(tmp_path / "origin")
    disk = _cache_disk(tmp_path, bindfs)
    daemon = spawn([], args=["--config", str(_config(tmp_path, tmp_path / "origin", disk.mountpoint))])
    shown = daemon.mountpoint / SHOWN
    names = sorted(tracks)
    data, _ = _read(shown / names[0])
    assert data == tracks[names[0]]
    wait_until(lambda: _cache(daemon)["chunks"] == 4, "the first track to be cached whole", daemon.log)
    assert _cache(daemon)["mode"] == "ok"

    disk.freeze()
    data, took = _read(shown / names[1])
    assert data == tracks[names[1]]
    assert took < FIRST_READ_WITHIN, f"the first read after the freeze took {took:.1f} s"
    for name in [*names[2:], names[0]]:  # the cached track too: its chunks are on the frozen disk
        data, took = _read(shown / name)
        assert data == tracks[name], name
        assert took < PASS_THROUGH_READ_WITHIN, f"{name} took {took:.1f} s: the cache is not passed through"

    started = time.monotonic()
    cache = _cache(daemon)
    assert time.monotonic() - started < 2.0, "status must not wait for the frozen cache disk"
    assert cache["mode"] == "pass-through"
    assert "did not answer" in str(cache["reason"])
    assert status_of(daemon.mountpoint)["state"] == "degraded"
    assert daemon.log().count(DISABLED.format(disk.mountpoint)) == 1

    _stop_within_bound(daemon, disk)
    assert_clean_log(daemon)


@pytest.mark.allow_log(
    r"cannot read tags of .* \d+\.flac \(FLACNoHeaderError",
    r"content cache in .* disabled, reading origins directly: the cache disk did not answer",
    r"content cache in .* works again",
)
@pytest.mark.failure_mode("cache-hung")
def test_a_cache_disk_frozen_before_the_start_is_passed_through_then_used_again(
    tmp_path: Path, spawn: Spawn, bindfs: MountBindfs
) -> None:
    tracks = _tracks(tmp_path / "origin")
    disk = _cache_disk(tmp_path, bindfs)
    args = ["--config", str(_config(tmp_path, tmp_path / "origin", disk.mountpoint))]
    first = spawn([], args=args)
    names = sorted(tracks)
    assert _read(first.mountpoint / SHOWN / names[0])[0] == tracks[names[0]]
    wait_until(lambda: _cache(first)["chunks"] == 4, "the first track to be cached whole", first.log)
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0

    disk.freeze()
    started = time.monotonic()
    second = spawn([], args=args, ready=False)
    second.wait_ready(timeout=READY_WITHIN + 20)
    took = time.monotonic() - started
    assert took < READY_WITHIN, f"ready only after {took:.1f} s with the cache disk frozen"
    shown = second.mountpoint / SHOWN
    for name in names:
        data, took = _read(shown / name)
        assert data == tracks[name], name
        assert took < FIRST_READ_WITHIN, f"{name} took {took:.1f} s"
    assert _cache(second)["mode"] == "pass-through"
    assert status_of(second.mountpoint)["state"] == "degraded"

    disk.thaw()
    wait_until(lambda: _cache(second)["mode"] == "ok", "the cache to be used again", second.log)
    assert _read(shown / names[0])[0] == tracks[names[0]]
    assert status_of(second.mountpoint)["state"] == "ready"
    second.signal(signal.SIGTERM)
    assert second.wait_exit() == 0
    assert_clean_log(second)


@pytest.mark.allow_log(
    r"cannot read tags of .* \d+\.flac \(FLACNoHeaderError",
    r"content cache in .* disabled, reading origins directly: the cache disk did not answer",
    r"content cache in .* works again",
)
@pytest.mark.failure_mode("cache-hung")
def test_the_cache_is_used_again_once_the_frozen_disk_answers(
    tmp_path: Path, spawn: Spawn, bindfs: MountBindfs
) -> None:
    tracks = _tracks(tmp_path / "origin")
    disk = _cache_disk(tmp_path, bindfs)
    daemon = spawn([], args=["--config", str(_config(tmp_path, tmp_path / "origin", disk.mountpoint))])
    shown = daemon.mountpoint / SHOWN
    names = sorted(tracks)
    disk.freeze()
    data, took = _read(shown / names[0])
    assert data == tracks[names[0]] and took < FIRST_READ_WITHIN
    assert _cache(daemon)["mode"] == "pass-through"

    disk.thaw()

    def cache_used_again() -> bool:  # no timer: the first cache call past cache_retry tries the disk
        assert _read(shown / names[0])[0] == tracks[names[0]]
        return _cache(daemon)["mode"] == "ok"

    wait_until(cache_used_again, "the cache to be used again", daemon.log)
    assert _read(shown / names[1])[0] == tracks[names[1]]
    wait_until(lambda: _cache(daemon)["chunks"] >= 4, "a track read now to be cached", daemon.log)
    hits = int(str(_cache(daemon)["hits"]))
    assert _read(shown / names[1])[0] == tracks[names[1]]
    assert int(str(_cache(daemon)["hits"])) > hits  # served by the cache disk again
    assert f"content cache in {disk.mountpoint} works again" in daemon.log()
    assert status_of(daemon.mountpoint)["state"] == "ready"
