"""What `musicfs mount` refuses or repairs at start, with the real command.

- paths-overlap: paths that would write into an origin or hang the daemon (a cache or state dir in
  an origin or in the mountpoint, a mountpoint in /proc) give one line and a documented exit code, and
  nothing is created.
- 2.4: an index damaged after a clean stop (200 bytes flipped in its middle) is set aside with one
  WARNING and rebuilt by a scan; the library is served and the later SIGTERM exits 0.
- 2.7: a dead FUSE mount of another program at the mountpoint is not ours to clean: refused, left.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from musicfs.demo import DemoLibrary
from tests.process.bulk import bulk_library
from tests.process.conftest import MountBindfs, Spawn, assert_clean_log, musicfs


def _tree(root: Path) -> list[str]:
    return sorted(
        str(Path(folder, name).relative_to(root))
        for folder, dirs, names in os.walk(root)
        for name in dirs + names
    )


def _unmount_if_ours(mountpoint: Path) -> None:
    entry = mount_at(mountpoint)
    if entry is not None and entry.fstype == "fuse.musicfs":
        subprocess.run(["fusermount3", "-u", "-z", "--", str(mountpoint)], check=False, timeout=10)


@pytest.mark.failure_mode("paths-overlap")
@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("cache-dir-is-the-origin", 5, "cache dir"),
        ("cache-dir-inside-the-origin", 5, "cache dir"),
        ("cache-dir-linked-into-the-origin", 5, "cache dir"),
        ("state-dir-inside-the-origin", 5, "state dir"),
        ("cache-dir-inside-the-mountpoint", 5, "cache dir"),
        ("state-dir-inside-the-mountpoint", 5, "state dir"),
        ("mountpoint-linked-into-the-origin", 3, "inside an origin"),
        ("mountpoint-proc-self", 4, "/proc"),  # /sys and /dev: tests/unit/test_preflight.py
    ],
)
def test_overlapping_paths_are_refused_before_anything_is_written(
    tmp_path: Path, library_copy: Path, case: str, code: int, message: str
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "link-to-origin").symlink_to(library_copy / "Music")
    state, cache = tmp_path / "state", tmp_path / "cache"
    mountpoint = {
        "mountpoint-linked-into-the-origin": tmp_path / "link-to-origin",
        "mountpoint-proc-self": Path("/proc/self"),
    }.get(case, mnt)
    cache = {
        "cache-dir-is-the-origin": library_copy,
        "cache-dir-inside-the-origin": library_copy / ".musicfs-cache",
        "cache-dir-linked-into-the-origin": tmp_path / "link-to-origin" / "cache",
        "cache-dir-inside-the-mountpoint": mnt / "cache",
    }.get(case, cache)
    state = {
        "state-dir-inside-the-origin": library_copy / ".musicfs",
        "state-dir-inside-the-mountpoint": mnt / "state",
    }.get(case, state)
    before = _tree(library_copy)
    argv = ["mount", str(mountpoint), "--origin", str(library_copy), "--state-dir", str(state)]
    try:
        done = musicfs(*argv, "--cache-dir", str(cache), timeout=30)
    finally:  # a daemon that mounted anyway was killed by the timeout: never leave its mount behind
        _unmount_if_ours(mountpoint)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicfs: error:") and message in lines[0], done.stderr
    assert _tree(library_copy) == before, "something was written into the origin"
    assert list(mnt.iterdir()) == []
    assert mount_at(mountpoint) is None


@pytest.mark.allow_log(r"index .* set aside: it is damaged")
@pytest.mark.failure_mode("2.4")
def test_index_damaged_after_a_clean_stop_is_set_aside_and_rebuilt(tmp_path: Path, spawn: Spawn) -> None:
    views = bulk_library(tmp_path / "origin", 200)
    first = spawn([tmp_path / "origin"])
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    index = first.state_dir / "index.sqlite"
    damaged = bytearray(index.read_bytes())
    middle = len(damaged) // 2
    damaged[middle : middle + 200] = bytes(byte ^ 0xFF for byte in damaged[middle : middle + 200])
    index.write_bytes(damaged)

    second = spawn([tmp_path / "origin"], state_dir=first.state_dir)
    mnt = second.mountpoint
    shown = sorted(
        str(Path(folder, name).relative_to(mnt)) for folder, _, names in os.walk(mnt) for name in names
    )
    assert shown == sorted(str(view) for view in views)
    for view, origin_file in views.items():
        assert (mnt / view).read_bytes() == origin_file.read_bytes(), view
    second.signal(signal.SIGTERM)
    assert second.wait_exit() == 0
    warnings = [line for line in second.log().splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "set aside" in warnings[0], warnings
    assert list(first.state_dir.glob("index.sqlite.old-*")), "the damaged index was not kept aside"
    assert_clean_log(second)


@pytest.mark.failure_mode("2.7")
def test_dead_fuse_mount_of_another_program_is_not_cleaned(
    tmp_path: Path, demo_library: DemoLibrary, bindfs: MountBindfs
) -> None:
    source = tmp_path / "elsewhere"
    source.mkdir()
    foreign = bindfs(source, tmp_path / "mnt")
    foreign.kill9()
    with pytest.raises(OSError) as error:
        os.statvfs(foreign.mountpoint)
    assert error.value.errno == errno.ENOTCONN

    state = ["--state-dir", str(tmp_path / "state")]
    done = musicfs("mount", str(foreign.mountpoint), "--origin", str(demo_library.root), *state)
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not MusicFS" in lines[0] and "fusermount3 -uz" in lines[0], done.stderr
    unmounted = musicfs("unmount", str(foreign.mountpoint))
    assert unmounted.returncode == 4, unmounted.stderr
    assert "not MusicFS" in unmounted.stderr
    entry = mount_at(foreign.mountpoint)
    assert entry is not None and entry.fstype == "fuse", "another program's mount was unmounted"
