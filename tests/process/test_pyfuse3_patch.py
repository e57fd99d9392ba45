"""The pyfuse3 that set-up builds (patches/pyfuse3-3.5.0-listings.patch) does what its patch says, on
real mounts of a tiny filesystem of three files (`tests/process/listing_fs.py`) that counts its own
opendir and readdir requests:
- once opendir answers ENOSYS, readdir is given the folder's inode (stock pyfuse3 3.5 gives 0) and the
  kernel keeps the listing: a second listing asks nothing;
- opendir may return a FileInfo with cache_readdir: the kernel still opens the folder each time but
  lists it from its cache.
Not run by `tox -e stock`: stock pyfuse3 has neither.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.mountinfo import mount_at

ROOT = Path(__file__).resolve().parents[2]
ROOT_INODE = 1
Mount = Callable[[str], tuple[Path, Callable[[], dict[str, Any]]]]


@pytest.fixture
def mount_listing_fs(tmp_path: Path) -> Iterator[Mount]:
    """Mount `listing_fs` in a process of its own; killed by PID and lazily unmounted afterwards."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def mount(mode: str) -> tuple[Path, Callable[[], dict[str, Any]]]:
        mountpoint, counts = tmp_path / f"mnt-{mode}", tmp_path / f"counts-{mode}.json"
        mountpoint.mkdir()
        with open(tmp_path / f"{mode}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.process.listing_fs", str(mountpoint), mode, str(counts)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append((process, mountpoint))
        deadline = time.monotonic() + 20
        while mount_at(mountpoint) is None or not counts.exists():
            assert process.poll() is None, (tmp_path / f"{mode}.log").read_text()
            assert time.monotonic() < deadline, "listing_fs did not mount within 20 s"
            time.sleep(0.02)
        return mountpoint, lambda: dict(json.loads(counts.read_text()))

    yield mount
    for process, mountpoint in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if mount_at(mountpoint) is not None:
            subprocess.run(["fusermount3", "-u", "-z", "--", str(mountpoint)], check=False, timeout=10)


def test_readdir_is_given_the_inode_once_opendir_answers_enosys(mount_listing_fs: Mount) -> None:
    mountpoint, counts = mount_listing_fs("enosys")
    assert sorted(os.listdir(mountpoint)) == ["a", "b", "c"]
    first = counts()
    assert sorted(os.listdir(mountpoint)) == ["a", "b", "c"]
    assert counts() == first  # the second listing came from the kernel's cache
    assert first["opendir"] == 1  # answered ENOSYS once: never asked again
    assert first["readdir"] and set(first["readdir"]) == {ROOT_INODE}


def test_opendir_may_return_a_fileinfo_that_lets_the_kernel_cache_the_listing(
    mount_listing_fs: Mount,
) -> None:
    mountpoint, counts = mount_listing_fs("fileinfo")
    assert sorted(os.listdir(mountpoint)) == ["a", "b", "c"]
    first = counts()
    assert sorted(os.listdir(mountpoint)) == ["a", "b", "c"]
    second = counts()
    assert (first["opendir"], second["opendir"]) == (1, 2)  # opened each time ...
    assert second["readdir"] == first["readdir"]  # ... but listed from the kernel's cache
    assert first["readdir"] and set(first["readdir"]) == {ROOT_INODE}  # the handle opendir returned
