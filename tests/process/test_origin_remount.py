"""A local origin whose filesystem goes away and comes back, against the real daemon, on a real tmpfs
mounted by the test (a USB disk):
  - origin-vanished: once it is unmounted lazily (or its folder renamed away), every open answers EIO
    from the very first request, never ENOENT (a player drops tracks that answer ENOENT), long before
    the health check runs;
  - origin-remount: once it is mounted again, live updates resume: files added after the remount show
    up within seconds, without waiting for the polling rescan (the watches are re-armed).
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from musicfs.demo import DemoLibrary
from tests.process.albums import source_flac, write_album
from tests.process.conftest import Spawn, wait_until

Mount = Callable[[], None]
LONG = "3600"  # seconds: neither the health check nor the polling rescan runs during a test


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Path, Mount]]:
    """A folder and a function that mounts a fresh tmpfs on it; every one is unmounted afterwards."""
    path = tmp_path / "disk"
    path.mkdir()

    def mount() -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], check=True, timeout=30)

    try:
        yield path, mount
    finally:
        while mount_at(path) is not None:
            done = subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
            if done.returncode != 0:
                break


def _unmount_lazily(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)
    assert mount_at(path) is None


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "musicfs.toml"
    config.write_text(f"health_interval = {LONG}\npoll_interval = {LONG}\n")
    return config


def _open_errno(path: Path) -> int | None:
    try:
        with open(path, "rb") as handle:
            handle.read(4096)
    except OSError as exc:
        return exc.errno
    return None


@pytest.mark.allow_log(r"open failed: .* is not there")
@pytest.mark.failure_mode("origin-vanished")
@pytest.mark.parametrize("how", ["umount -l", "renamed away"])
def test_a_vanished_origin_answers_eio_from_the_first_open(
    how: str, demo_library: DemoLibrary, disk: tuple[Path, Mount], tmp_path: Path, spawn: Spawn
) -> None:
    path, mount = disk
    if how == "umount -l":
        mount()
    tracks = write_album(source_flac(demo_library), path / "album", artist="Usb", album="Stick", count=4)
    daemon = spawn([path], args=["--config", str(_config(tmp_path))])
    mnt = daemon.mountpoint
    first, *rest = sorted(tracks)
    assert (mnt / first).read_bytes() == tracks[first].read_bytes()
    if how == "umount -l":
        _unmount_lazily(path)
    else:
        path.rename(tmp_path / "elsewhere")
    codes = {view: _open_errno(mnt / view) for view in [first, *rest]}
    assert codes == dict.fromkeys(codes, errno.EIO), codes
    assert sorted(p.name for p in (mnt / "Usb" / "Stick").iterdir()) == sorted(v.name for v in tracks)
    # Only the health check makes the gateway fail fast; it ran once, at start, and found the origin.
    assert "is offline" not in daemon.log(), "the health check ran: it is not what this tests"


@pytest.mark.allow_log(r"is offline \(its folder is empty but the index knows files", r"is back; rescanning")
@pytest.mark.failure_mode("origin-remount")
@pytest.mark.parametrize("held", [False, True], ids=["idle", "a file held open"])
def test_live_updates_resume_after_the_origin_is_mounted_again(
    held: bool, demo_library: DemoLibrary, disk: tuple[Path, Mount], tmp_path: Path, spawn: Spawn
) -> None:
    path, mount = disk
    source = source_flac(demo_library)
    mount()
    before = write_album(source, path / "one", artist="Usb", album="Before", count=2)
    daemon = spawn([path], args=["--config", str(_config(tmp_path))])
    mnt = daemon.mountpoint
    wait_until(lambda: "watching" in daemon.log(), "the watcher to start", daemon.log)
    # A file held open keeps the old filesystem alive after `umount -l`: no IN_UNMOUNT ever comes.
    with contextlib.ExitStack() as stack:
        if held:
            stack.enter_context(open(next(iter(before.values())), "rb"))
        _unmount_lazily(path)
        mount()
        again = write_album(source, path / "one", artist="Usb", album="Before", count=2)
        added = write_album(source, path / "two", artist="Usb", album="After", count=2)
        took = wait_until(
            lambda: all((mnt / view).is_file() for view in added),
            "files added after the remount",
            daemon.log,
            10,
        )
    # And later changes reach the daemon through the new watches, not only through one rescan.
    later = write_album(source, path / "three", artist="Usb", album="Later", count=1)
    wait_until(lambda: all((mnt / view).is_file() for view in later), "a file added later", daemon.log, 10)
    for view, origin_file in {**again, **added, **later}.items():
        assert (mnt / view).read_bytes() == origin_file.read_bytes(), view
    print(f"remounted and added files visible after {took:.2f} s")
