"""Terminal-tier fixtures: the real `musicfs` in a pseudo-terminal, as a person runs it.

Paths are short (`/tmp/mfs-XXXXXXXX/...`, as a person's are) so that what must fit on an 80-column
screen is judged on realistic lines, not on pytest's long temporary folders. Everything a test
starts is killed by PID and every mount under its folder lazily unmounted afterwards, whatever
happened. A test here that cannot get FUSE fails (it never skips).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from musicfs.demo import DemoLibrary, generate_bulk
from musicfs.mountinfo import parse_mountinfo, read_mountinfo
from tests.process.conftest import _fuse_is_available, bindfs, spawn  # noqa: F401 (fixtures of this tier too)
from tests.terminal.screen import Terminal, clean_environment

BULK_TRACKS = 1500  # three batches of the scanner's 500: a first scan that redraws its bar

OpenTerminal = Callable[..., Terminal]


def short_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mfs-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


def unmount_below(folder: Path) -> None:
    """Lazily unmount every mount at or below `folder` (deepest first); never raises."""
    mounts = [os.fsdecode(m.mount_point) for m in parse_mountinfo(read_mountinfo())]
    for mountpoint in sorted({m for m in mounts if Path(m).is_relative_to(folder)}, key=len, reverse=True):
        subprocess.run(["fusermount3", "-u", "-z", "--", mountpoint], check=False, capture_output=True)
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short private folder; its mounts are undone and it is removed after the test."""
    folder = short_folder()
    try:
        yield folder
    finally:
        unmount_below(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def bulk() -> Iterator[Path]:
    """A library of BULK_TRACKS small FLAC files at a short path; read-only for tests."""
    folder = short_folder()
    generate_bulk(folder / "lib", BULK_TRACKS, tracks_per_album=10, albums_per_artist=1)
    yield folder / "lib"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def demo(demo_library: DemoLibrary, scratch: Path) -> Path:
    """A copy of the demo library at a short path (its one corrupt file gives a WARNING at the scan)."""
    shutil.copytree(demo_library.root, scratch / "lib")
    return scratch / "lib"


@pytest.fixture
def terminal(scratch: Path) -> Iterator[OpenTerminal]:
    """Open terminals running a command; each is killed by PID afterwards, before `scratch` goes."""
    opened: list[Terminal] = []

    def open_terminal(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Terminal:
        term = Terminal(argv, env=env if env is not None else clean_environment(), cwd=str(scratch))
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        term.close()


def musicfs_argv(*args: str | Path) -> list[str]:
    return [MUSICFS, *(str(a) for a in args)]


def mount_argv(scratch: Path, *origins: Path, extra: Sequence[str] = ()) -> list[str]:
    """`musicfs mount SCRATCH/mnt --origin ... --state-dir SCRATCH/state` (the mountpoint made)."""
    (scratch / "mnt").mkdir(exist_ok=True)
    argv = musicfs_argv("mount", scratch / "mnt", "--state-dir", scratch / "state", *extra)
    for origin in origins:
        argv += ["--origin", str(origin)]
    return argv


def stop_if_running(pid: int) -> None:
    """SIGKILL to the `musicfs` a test started through its shell, if it still runs; never raises."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            ours = b"musicfs" in cmdline.read()
        with open(f"/proc/{pid}/stat") as stat:
            running = stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return
    if ours and running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
