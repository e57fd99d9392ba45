"""7.6: a copy of the mount root must not steer the live daemon.

Backups copy extended attributes (`cp -a`, `rsync -aX`); the root's `user.musicfs.control` and
`user.musicfs.pid` once went with them, and `musicfs shutdown COPY` stopped the real daemon. The
commands must act only on a path that is itself a live MusicFS mount, and a backup must not carry
those attributes at all.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, musicfs

STEERING = ("user.musicfs.control", "user.musicfs.pid")
COPIERS = {
    "cp -a": lambda source, copy: ["cp", "-a", "--", str(source), str(copy)],
    "rsync -aX": lambda source, copy: ["rsync", "-aX", "--", f"{source}/", f"{copy}/"],
}


def _refused_everywhere(daemon: DaemonProcess, path: Path) -> None:
    """status, rescan and shutdown of `path` each refuse with one line and exit 4; the daemon serves on."""
    for command in ("shutdown", "status", "rescan"):
        done = musicfs(command, str(path), timeout=30)
        assert done.returncode == 4, (command, done.returncode, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr == f"musicfs: error: nothing is mounted at {path}\n", done.stderr
        assert done.stdout == ""
    assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
    assert daemon.serving_pid() == daemon.pid
    assert "shutting down" not in daemon.log() and "rescan" not in daemon.log().split("ready in")[-1]


@pytest.mark.failure_mode("7.6")
@pytest.mark.parametrize("copier", sorted(COPIERS))
def test_a_backup_of_the_mount_root_carries_nothing_that_steers_the_daemon(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path, copier: str
) -> None:
    daemon = spawn([demo_library.root])
    copy = tmp_path / "backup"
    subprocess.run(COPIERS[copier](daemon.mountpoint, copy), check=True, capture_output=True, timeout=60)
    assert (copy / "Björk").is_dir()  # it really is a copy of the view
    assert not [name for name in os.listxattr(copy) if name.startswith("user.musicfs.")]
    # The live mount still answers the exact names (how the commands find their daemon).
    assert int(os.getxattr(daemon.mountpoint, "user.musicfs.pid")) == daemon.pid
    assert not set(STEERING) & set(os.listxattr(daemon.mountpoint))
    _refused_everywhere(daemon, copy)


@pytest.mark.failure_mode("7.6")
def test_a_folder_that_carries_the_root_attributes_is_refused(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path
) -> None:
    """A backup made before the attributes were hidden, or a folder someone decorated by hand."""
    daemon = spawn([demo_library.root])
    old_backup = tmp_path / "old-backup"
    old_backup.mkdir()
    for name in STEERING:
        os.setxattr(old_backup, name, os.getxattr(daemon.mountpoint, name))
    _refused_everywhere(daemon, old_backup)
    inside = daemon.mountpoint / "Björk"  # inside the mount, but not the mount itself
    _refused_everywhere(daemon, inside)
    done = musicfs("status", str(daemon.mountpoint))
    assert done.returncode == 0, done.stderr  # the mount itself still works
