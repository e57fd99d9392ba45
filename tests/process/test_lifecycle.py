"""Lifecycle of the real daemon: kill -9 and restart, auto-unmount, shutdown under load, concurrency."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from chaos.mountinfo import mount_at
from chaos.oracle import demo_bytes, demo_view
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, assert_clean_log


def _tracks(root: Path) -> list[Path]:
    return sorted(Path(folder) / name for folder, _, names in os.walk(root) for name in names)


def _fusermount_processes() -> list[str]:
    """pid, state, kernel wait channel and command line of every fusermount3 process (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "fusermount3" not in command:
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            found.append(f"{proc.name} {state} {(proc / 'wchan').read_text()} {command.strip()}")
        except OSError:
            continue
    return found


def _wait(condition: object, timeout: float, what: str) -> float:
    """Poll `condition()` until true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.allow_log(r"the last run did not stop cleanly", r"cleaning a stale fuse.musicfs mount")
@pytest.mark.failure_mode("2.7")
def test_kill9_leaves_a_dead_mount_that_the_next_start_cleans(
    demo_library: DemoLibrary, spawn: Spawn
) -> None:
    first = spawn([demo_library.root])
    track = _tracks(first.mountpoint)[0]
    name = track.relative_to(first.mountpoint)
    first.kill9()
    entry = mount_at(first.mountpoint)
    assert entry is not None and entry.fstype == "fuse.musicfs"  # the default: a dead mount stays
    with pytest.raises(OSError) as error:
        os.statvfs(first.mountpoint)
    assert error.value.errno == errno.ENOTCONN
    started = time.monotonic()
    second = spawn([demo_library.root], state_dir=first.log_path.parent / "state")
    took = time.monotonic() - started
    assert "cleaning a stale fuse.musicfs mount" in second.log()
    assert "the last run did not stop cleanly; checking the index" in second.log()
    assert "index integrity_check passed" in second.log()  # the deep check after an unclean stop
    assert (second.mountpoint / name).read_bytes() == demo_view(demo_library.root)[str(name)].read_bytes()
    assert took < 10, f"restart took {took:.1f} s"
    assert_clean_log(second)


@pytest.mark.allow_log(r"the last run did not stop cleanly")
@pytest.mark.failure_mode("2.7")
def test_auto_unmount_leaves_an_empty_folder_after_kill9(demo_library: DemoLibrary, spawn: Spawn) -> None:
    first = spawn([demo_library.root], args=["--auto-unmount"])
    first.kill9()
    # fusermount3's helper unmounts once it sees the daemon's end; on a loaded machine that can take
    # seconds: a bound that only catches "never", and the time printed.
    try:
        took = _wait(lambda: mount_at(first.mountpoint) is None, 30, "libfuse's auto_unmount to unmount")
    except AssertionError as exc:  # say what the unmount helper was doing (seen once in a loaded run)
        raise AssertionError(f"{exc}; fusermount3 processes: {_fusermount_processes()}") from None
    print(f"auto_unmount took {took:.2f} s after the kill")
    assert list(first.mountpoint.iterdir()) == []
    second = spawn([demo_library.root], state_dir=first.log_path.parent / "state")
    assert "cleaning a stale" not in second.log()
    assert _tracks(second.mountpoint)


@pytest.mark.failure_mode("5.1")
def test_100_concurrent_reads_all_complete_with_the_right_bytes(
    demo_library: DemoLibrary, spawn: Spawn
) -> None:
    daemon = spawn([demo_library.root])
    expected = demo_bytes(demo_library.root, daemon.mountpoint)
    tracks = sorted(expected)
    jobs = [tracks[i % len(tracks)] for i in range(100)]
    barrier = threading.Barrier(100, timeout=30)

    def read(track: Path) -> bool:
        barrier.wait()
        return track.read_bytes() == expected[track]

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(read, jobs, timeout=60))
    assert all(results)
    assert_clean_log(daemon)


@pytest.mark.failure_mode("2.1")
def test_sigterm_while_eight_readers_stream(demo_library: DemoLibrary, spawn: Spawn) -> None:
    daemon = spawn([demo_library.root])
    expected = demo_bytes(demo_library.root, daemon.mountpoint)
    tracks = sorted(expected)
    stop = threading.Event()
    reads = [0] * 8
    wrong: list[Path] = []

    def stream(worker: int) -> None:
        while not stop.is_set():
            for track in tracks:
                try:
                    data = track.read_bytes()
                except OSError:
                    return  # the mount is going away: an error is fine, a hang or wrong bytes are not
                if data != expected[track]:
                    wrong.append(track)
                reads[worker] += 1

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    _wait(lambda: min(reads) > 5, 30, "every reader to be streaming")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a reader hung after shutdown"
    assert mount_at(daemon.mountpoint) is None
    assert wrong == []
    assert_clean_log(daemon)


@pytest.mark.failure_mode("2.7")
def test_unmount_command_cleans_a_dead_mount(demo_library: DemoLibrary, spawn: Spawn) -> None:
    daemon = spawn([demo_library.root])
    daemon.kill9()
    done = subprocess.run(
        [MUSICFS, "unmount", str(daemon.mountpoint)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "cleaned the stale mount" in done.stdout
    assert mount_at(daemon.mountpoint) is None
    again = subprocess.run(
        [MUSICFS, "unmount", str(daemon.mountpoint)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 4 and again.stderr.startswith("musicfs: error: nothing is mounted")
