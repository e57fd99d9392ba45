"""Process-tier fixtures: the real `musicfs mount` on a real FUSE mount, cleaned up even on failure.

A test here that cannot get FUSE fails (it never skips): CI must prove real mounts work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chaos.bindfs import Bindfs
from chaos.daemon import MUSICFS, DaemonProcess
from chaos.plan import FaultPlan
from tests.checklogs import check_daemon_logs

Spawn = Callable[..., DaemonProcess]
MountBindfs = Callable[[Path, Path], Bindfs]


@pytest.fixture(scope="session", autouse=True)
def _fuse_is_available() -> None:
    assert os.path.exists("/dev/fuse"), "/dev/fuse is missing: process tests need FUSE"
    assert shutil.which("fusermount3"), "fusermount3 is missing: install the fuse3 package"


@pytest.fixture
def spawn(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Spawn]:
    """Start `musicfs mount` processes; every one is killed by PID and lazily unmounted afterwards,
    and the test fails if one logged a warning or error it did not allow (`tests/checklogs.py`)."""
    started: list[DaemonProcess] = []

    def start(
        origins: Sequence[Path],
        *,
        mountpoint: Path | None = None,
        state_dir: Path | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready: bool = True,
        plan: FaultPlan | None = None,
    ) -> DaemonProcess:
        mnt = mountpoint or tmp_path / "mnt"
        mnt.mkdir(exist_ok=True)
        # The default cache folder is the test's own: never the machine's ~/.cache/musicfs.
        private = {"XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
        daemon = DaemonProcess(
            mnt,
            origins,
            state_dir or tmp_path / "state",
            tmp_path / f"daemon{len(started)}.log",
            extra_args=args,
            env={**private, **(env or {})},
            plan=plan,
        )
        started.append(daemon)
        daemon.start()
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    # The newest first: an older daemon's cleanup must not unmount a newer one's live mount at the
    # same mountpoint (that daemon would log, rightly, that its mount was removed from outside).
    for daemon in reversed(started):
        daemon.cleanup()
    check_daemon_logs(request.node, [daemon.log_path for daemon in started])


def assert_clean_log(daemon: DaemonProcess) -> None:
    """The daemon logged no ERROR and no traceback."""
    text = daemon.log()
    assert " ERROR " not in text and "Traceback" not in text, text


def musicfs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `musicfs` command as a user would, without a terminal."""
    return subprocess.run(
        [MUSICFS, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def status_of(mountpoint: Path) -> dict[str, Any]:
    """`musicfs status MOUNTPOINT` as JSON (it prints JSON when not on a terminal)."""
    done = musicfs("status", str(mountpoint), timeout=30)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def wait_until(
    condition: Callable[[], bool], what: str, log: Callable[[], str], timeout: float = 20
) -> float:
    """Poll `condition` until it holds (returns the seconds it took); fail with the daemon's log."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; daemon log:\n{log()}")


@pytest.fixture
def bindfs() -> Iterator[MountBindfs]:
    """Mount folders with a real bindfs the test can freeze or kill; thawed and unmounted afterwards."""
    mounts: list[Bindfs] = []

    def mount(source: Path, mountpoint: Path) -> Bindfs:
        mounted = Bindfs(source, mountpoint)
        mounts.append(mounted)
        return mounted.start()

    yield mount
    for mounted in mounts:
        mounted.cleanup()


def read_past_the_kernel(path: Path) -> bytes:
    """Read a file of the mount through the daemon: the kernel's pages of it are dropped first (a
    file opened with keep_cache would be answered from them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while data := os.read(fd, 1 << 17):
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)
