"""The real daemon on a real mount: the tree, the bytes, read-only-ness, clean exits and bad input."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import unicodedata
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from chaos.mountinfo import mount_at
from chaos.oracle import DEMO_VIEW, demo_bytes, demo_view, listed
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, assert_clean_log, musicfs


def _files(root: Path) -> list[Path]:
    return sorted(Path(folder) / name for folder, _, names in os.walk(root) for name in names)


def test_tree_shows_the_library_by_tags(demo_library: DemoLibrary, spawn: Spawn) -> None:
    mnt = spawn([demo_library.root]).mountpoint
    assert listed(mnt) == sorted(DEMO_VIEW)  # every track and cover at the path its tags give, no other
    assert len([p for p in DEMO_VIEW if not p.endswith((".png", ".jpg"))]) == len(demo_library.tracks)
    assert (mnt / "Björk").stat().st_mode & 0o7777 == 0o555
    assert (mnt / "Björk/Debut (1993)/01 Human Behaviour.mp3").stat().st_mode & 0o7777 == 0o444


def test_reads_return_the_origin_bytes_at_every_offset(demo_library: DemoLibrary, spawn: Spawn) -> None:
    daemon = spawn([demo_library.root])
    rng = random.Random(7)
    for path, expected in demo_bytes(demo_library.root, daemon.mountpoint).items():
        assert path.read_bytes() == expected, path
        assert path.stat().st_size == len(expected)
        with open(path, "rb", buffering=0) as handle:
            for _ in range(20):
                offset = rng.randrange(0, len(expected) + 10)
                size = rng.choice([1, 7, 4096, 65536, 200_000])
                assert os.pread(handle.fileno(), size, offset) == expected[offset : offset + size]


def test_names_sent_in_nfd_find_the_same_files(demo_library: DemoLibrary, spawn: Spawn) -> None:
    """macOS clients (SMB, NFS re-exports) send decomposed names: they reach the NFC-named files."""
    daemon = spawn([demo_library.root])
    composed = [view for view in DEMO_VIEW if unicodedata.normalize("NFD", view) != view]
    assert composed
    for view in composed:
        decomposed = daemon.mountpoint / unicodedata.normalize("NFD", view)
        assert decomposed.read_bytes() == demo_view(demo_library.root)[view].read_bytes()
    assert sorted(listed(daemon.mountpoint)) == sorted(DEMO_VIEW)  # listed in one form only
    assert_clean_log(daemon)


def test_origin_attribute_names_the_origin_file(demo_library: DemoLibrary, spawn: Spawn) -> None:
    mnt = spawn([demo_library.root]).mountpoint
    for view, origin in demo_view(demo_library.root).items():
        assert os.getxattr(mnt / view, "user.musicfs.origin") == os.fsencode(origin), view


def test_every_change_is_refused_with_erofs(demo_library: DemoLibrary, spawn: Spawn) -> None:
    mnt = spawn([demo_library.root]).mountpoint
    track = _files(mnt)[0]
    attempts = [
        lambda: os.open(track, os.O_RDWR),
        lambda: os.open(mnt / "new.flac", os.O_WRONLY | os.O_CREAT),
        lambda: (mnt / "folder").mkdir(),
        lambda: track.unlink(),
        lambda: track.rename(track.with_name("x.flac")),
        lambda: os.chmod(track, 0o644),
        lambda: os.setxattr(track, "user.x", b"1"),
        lambda: os.truncate(track, 0),
    ]
    origin_before = _snapshot(demo_library.root)
    for attempt in attempts:
        with pytest.raises(OSError) as error:
            attempt()
        assert error.value.errno == errno.EROFS
    assert _snapshot(demo_library.root) == origin_before  # nothing in the origin changed


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of a folder with its size, mode and mtime."""
    return {
        str(path.relative_to(root)): (stat.st_size, stat.st_mode, stat.st_mtime_ns)
        for path in _files(root)
        for stat in [path.stat()]
    }


@pytest.mark.failure_mode("2.1")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_and_exits_zero(demo_library: DemoLibrary, spawn: Spawn, signum: int) -> None:
    daemon = spawn([demo_library.root])
    daemon.signal(signum)
    assert daemon.wait_exit() == 0
    assert mount_at(daemon.mountpoint) is None
    assert "unmounted" in daemon.log()
    assert_clean_log(daemon)


@pytest.mark.failure_mode("2.1")
def test_sigterm_with_a_file_open_and_a_shell_inside(demo_library: DemoLibrary, spawn: Spawn) -> None:
    daemon = spawn([demo_library.root])
    album = next(p for p in daemon.mountpoint.iterdir() if p.is_dir())
    shell = subprocess.Popen(["sleep", "30"], cwd=album)
    held = os.open(_files(album)[0], os.O_RDONLY)
    try:
        assert os.read(held, 10)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        assert mount_at(daemon.mountpoint) is None
    finally:
        shell.kill()
        shell.wait()
        try:
            os.close(held)
        except OSError as exc:  # the daemon is gone: closing reports the lost connection
            assert exc.errno == errno.ENOTCONN
    assert_clean_log(daemon)


def test_restart_keeps_inodes_and_unmount_command_stops_it(demo_library: DemoLibrary, spawn: Spawn) -> None:
    first = spawn([demo_library.root])
    inodes = {str(p.relative_to(first.mountpoint)): p.stat().st_ino for p in _files(first.mountpoint)}
    done = subprocess.run(
        [MUSICFS, "unmount", str(first.mountpoint)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert first.wait_exit() == 0
    second = spawn([demo_library.root])
    again = {str(p.relative_to(second.mountpoint)): p.stat().st_ino for p in _files(second.mountpoint)}
    assert again == inodes


@pytest.mark.failure_mode("2.7")
def test_second_instance_on_a_live_mount_is_refused(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path
) -> None:
    first = spawn([demo_library.root])
    second = spawn([demo_library.root], state_dir=tmp_path / "other-state", ready=False)
    assert second.wait_exit() == 6
    assert f"already served by a running MusicFS (pid {first.pid})" in second.log()
    assert (first.mountpoint / "Björk").is_dir()


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing-origin", 3, "origin"),
        ("missing-mountpoint", 4, "does not exist"),
        ("origin-inside-mountpoint", 3, "inside the mountpoint"),
        ("bad-config", 2, "unknown key"),
        ("bad-template", 2, "template"),
        ("no-origin", 2, "no origin given"),
        ("no-mountpoint", 2, "no mountpoint"),
        ("state-dir-is-a-file", 5, "state dir"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(
    tmp_path: Path, demo_library: DemoLibrary, case: str, code: int, message: str
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    state = ["--state-dir", str(tmp_path / "state")]
    config = tmp_path / "c.toml"
    config.write_text("colour = 'red'\n")
    (mnt / "inner").mkdir()
    argv = {
        "missing-origin": ["mount", str(mnt), "--origin", str(tmp_path / "nope"), *state],
        "missing-mountpoint": ["mount", str(tmp_path / "nomnt"), "--origin", str(demo_library.root), *state],
        "origin-inside-mountpoint": ["mount", str(mnt), "--origin", str(mnt / "inner"), *state],
        "bad-config": ["mount", str(mnt), "--config", str(config), *state],
        "bad-template": [
            "mount",
            str(mnt),
            "--origin",
            str(demo_library.root),
            "--template",
            "{nope}",
            *state,
        ],
        "no-origin": ["mount", str(mnt), *state],
        "no-mountpoint": ["mount", "--origin", str(demo_library.root), *state],
        "state-dir-is-a-file": [
            "mount",
            str(mnt),
            "--origin",
            str(demo_library.root),
            "--state-dir",
            str(config),
        ],
    }[case]
    done = musicfs(*argv)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicfs: error:") and message in lines[0], done.stderr
    assert mount_at(mnt) is None


@pytest.mark.failure_mode("3.9")
def test_second_instance_on_the_same_state_dir_is_refused_before_touching_anything(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path
) -> None:
    first = spawn([demo_library.root])
    other_mnt = tmp_path / "other-mnt"
    other_mnt.mkdir()
    done = musicfs(
        "mount", str(other_mnt), "--origin", str(demo_library.root), "--state-dir", str(tmp_path / "state")
    )
    assert done.returncode == 6
    assert f"is used by MusicFS pid {first.pid}" in done.stderr
    assert mount_at(other_mnt) is None
    assert first.serving_pid() == first.pid
