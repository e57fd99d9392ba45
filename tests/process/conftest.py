"""Process-tier fixtures: the real `musicfs mount` on a real FUSE mount, cleaned up even on failure.

A test here that cannot get FUSE fails (it never skips): CI must prove real mounts work.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.plan import FaultPlan

Spawn = Callable[..., DaemonProcess]


@pytest.fixture(scope="session", autouse=True)
def _fuse_is_available() -> None:
    assert os.path.exists("/dev/fuse"), "/dev/fuse is missing: process tests need FUSE"
    assert shutil.which("fusermount3"), "fusermount3 is missing: install the fuse3 package"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `musicfs mount` processes; every one is killed by PID and lazily unmounted afterwards."""
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
        daemon = DaemonProcess(
            mnt,
            origins,
            state_dir or tmp_path / "state",
            tmp_path / f"daemon{len(started)}.log",
            extra_args=args,
            env=env,
            plan=plan,
        )
        started.append(daemon)
        daemon.start()
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()


def assert_clean_log(daemon: DaemonProcess) -> None:
    """The daemon logged no ERROR and no traceback."""
    text = daemon.log()
    assert " ERROR " not in text and "Traceback" not in text, text
