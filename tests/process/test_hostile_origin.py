"""Hostile origin content against the real daemon (7.2): a track replaced by a FIFO never blocks an
open nor takes its origin down, and the scanner does not index it; with a root daemon and
allow_other, real other users who write into an origin never read through the mount what the origin
itself would not let them read (symlinks leading out, other users' private files, private folders),
also when they swap a file after the scan (docs/threat-model.md)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicfs.demo import DemoLibrary
from tests.process.albums import source_flac, write_album, write_track
from tests.process.conftest import Spawn, musicfs

OPENS = 20
USER_TOOL_TIMEOUT = 120


def _stuck_in_fifo_open(pid: int) -> int:
    """How many threads of `pid` sleep in the kernel waiting for a FIFO's other end."""
    stuck = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stuck += (task / "wchan").read_text().strip() == "wait_for_partner"
        except OSError:
            continue
    return stuck


@pytest.mark.allow_log(r"not a regular file \(a FIFO\)")
@pytest.mark.failure_mode("7.2")
def test_a_fifo_in_place_of_a_track_never_blocks_and_the_origin_keeps_serving(
    demo_library: DemoLibrary, tmp_path: Path, spawn: Spawn
) -> None:
    origin = tmp_path / "origin"
    tracks = write_album(source_flac(demo_library), origin / "album", artist="Fifo", album="Trap", count=6)
    config = tmp_path / "musicfs.toml"
    config.write_text("poll_interval = 0\n")
    daemon = spawn([origin], args=["--read-timeout", "2", "--config", str(config)])
    mnt = daemon.mountpoint
    victim, victim_origin = sorted(tracks.items())[0]
    victim_origin.unlink()
    os.mkfifo(victim_origin)

    outcomes: list[object] = []
    lock = threading.Lock()

    def open_victim() -> None:
        started = time.monotonic()
        try:
            with open(mnt / victim, "rb") as handle:
                handle.read(4096)
            outcome: object = "no error"
        except OSError as exc:
            outcome = exc.errno
        with lock:
            outcomes.append((outcome, time.monotonic() - started))

    openers = [threading.Thread(target=open_victim, daemon=True) for _ in range(OPENS)]
    began = time.monotonic()
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(10)
    assert time.monotonic() - began < 10
    assert len(outcomes) == OPENS, f"only {len(outcomes)} of {OPENS} opens were answered"
    assert all(code == errno.EIO for code, _ in outcomes), outcomes  # type: ignore[misc]
    slowest = max(took for _, took in outcomes)  # type: ignore[misc]
    assert slowest < 1.0, f"an open of the FIFO took {slowest:.2f} s: it must never block"
    assert _stuck_in_fifo_open(daemon.pid) == 0, "a daemon thread is stuck opening the FIFO"

    for view, origin_file in sorted(tracks.items())[1:]:
        assert (mnt / view).read_bytes() == origin_file.read_bytes(), view
    assert "not a regular file" in daemon.log()

    done = musicfs("rescan", str(mnt), timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (mnt / victim).exists(), "the scanner must not index a FIFO as a track"
    assert all((mnt / view).is_file() for view in sorted(tracks)[1:])


# --- root daemon, allow_other, and other users writing into an origin --------------------------------


@pytest.fixture
def two_users() -> Iterator[tuple[str, str]]:
    """Two real, unprivileged users (mfs-t-<random>), removed with their homes whatever happens."""
    created: list[str] = []
    try:
        for _ in range(2):
            name = f"mfs-t-{secrets.token_hex(4)}"
            created.append(name)
            done = subprocess.run(
                ["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name],
                capture_output=True,
                text=True,
                timeout=USER_TOOL_TIMEOUT,
            )
            assert done.returncode == 0, f"useradd {name}: {done.stderr}"
        yield created[0], created[1]
    finally:
        left = [name for name in created if not _removed(name)]
        assert not left, f"could not remove the test users {left}: remove them with userdel -r"


def _removed(user: str) -> bool:
    """Remove a user and their home; the password files may be locked a while by another tool."""
    deadline = time.monotonic() + USER_TOOL_TIMEOUT
    while time.monotonic() < deadline:
        if subprocess.run(["getent", "passwd", user], capture_output=True, timeout=30).returncode == 2:
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["userdel", "--remove", user], capture_output=True, timeout=USER_TOOL_TIMEOUT)
        time.sleep(0.2)  # retry pause after a failed userdel, not a wait for a condition
    return False


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user may reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mfs-hostile-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as(user: str, *command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, timeout=30)


def _read_as(user: str, path: Path) -> bytes | None:
    """What `user` reads at `path` with cat, or None when it cannot."""
    done = _as(user, "cat", str(path))
    return done.stdout if done.returncode == 0 else None


def _shown(mountpoint: Path) -> set[Path]:
    return {
        (Path(folder) / name).relative_to(mountpoint)
        for folder, _, names in os.walk(mountpoint)
        for name in names
    }


def _chown(path: Path, user: str) -> None:
    shutil.chown(path, user, user)


@pytest.mark.allow_log(
    r"other users may not read it",
    r"a symlink leading outside the origin",
    r"leads outside its origin; not served",
)
@pytest.mark.failure_mode("7.2")
def test_other_users_never_read_what_the_origin_does_not_offer_them(
    two_users: tuple[str, str], open_dir: Path, demo_library: DemoLibrary, spawn: Spawn
) -> None:
    attacker, victim = two_users
    source = open_dir / "source.flac"
    shutil.copyfile(source_flac(demo_library), source)
    origin = open_dir / "origin"
    legit = write_album(source, origin / "public", artist="Public", album="Shared", count=3)
    drop = origin / "drop"  # a folder the attacker may write to (a shared music upload folder)
    drop.mkdir()
    _chown(drop, attacker)
    legit[write_track(source, drop / "gift.flac", artist="Gift", album="Box", title="Fine", track=1)] = (
        drop / "gift.flac"
    )
    swapped_view = write_track(
        source, drop / "later.flac", artist="Gift", album="Box", title="Later", track=2
    )
    chmodded_view = write_track(
        source, drop / "hidden.flac", artist="Gift", album="Box", title="Shy", track=3
    )
    for name in ("gift.flac", "later.flac", "hidden.flac"):
        _chown(drop / name, attacker)

    victim_home = open_dir / "victim"
    victim_home.mkdir()
    diary = victim_home / "diary.flac"
    write_track(source, diary, artist="Victim Private", album="Diary", title="Secret", track=1)
    _chown(victim_home, victim)
    _chown(diary, victim)
    diary.chmod(0o600)
    victim_home.chmod(0o700)
    own_private = drop / "mine.flac"
    write_track(source, own_private, artist="Attacker Private", album="Mine", title="Own", track=1)
    _chown(own_private, attacker)
    own_private.chmod(0o600)

    # What the attacker plants, as themselves: symlinks out of the origin (a file root can read,
    # another user's private file, the whole filesystem), and a private folder with a 0644 track.
    for command in (
        ["ln", "-s", "/etc/shadow", str(drop / "x.flac")],
        ["ln", "-s", str(diary), str(drop / "y.flac")],
        ["ln", "-s", "/", str(drop / "everything")],
        ["mkdir", "-m", "0700", str(drop / "closet")],
        ["cp", str(source), str(drop / "closet" / "inside.flac")],
    ):
        done = _as(attacker, *command)
        assert done.returncode == 0, done.stderr
    # A hard link to another user's private file (fs.protected_hardlinks stops the attacker making
    # it; a system without that protection, or an admin's copy, puts one there all the same).
    os.link(diary, drop / "hard.flac")

    mnt = open_dir / "mnt"
    mnt.mkdir()
    daemon = spawn([origin], mountpoint=mnt, args=["--allow-other"])
    assert _shown(mnt) == set(legit) | {swapped_view, chmodded_view}, "only what every user may read"
    secrets_of = {
        attacker: [Path("/etc/shadow").read_bytes(), diary.read_bytes()],
        victim: [Path("/etc/shadow").read_bytes(), own_private.read_bytes()],
    }
    for user in (attacker, victim):
        for view, origin_file in legit.items():
            assert _read_as(user, mnt / view) == origin_file.read_bytes(), (user, view)

    # After the scan: the attacker swaps a shown track for a symlink to the victim's diary, and makes
    # another private. Neither is readable through the mount, before or after the rescan they cause.
    (drop / "later.flac").unlink()
    assert _as(attacker, "ln", "-s", str(diary), str(drop / "later.flac")).returncode == 0
    assert _as(attacker, "chmod", "0600", str(drop / "hidden.flac")).returncode == 0
    assert _read_as(attacker, mnt / swapped_view) is None
    assert _read_as(victim, mnt / chmodded_view) is None

    for user in (attacker, victim):
        read = [_read_as(user, mnt / view) for view in _shown(mnt)]
        leaked = [i for i, secret in enumerate(secrets_of[user]) if secret in read]
        assert not leaked, f"{user} read secret #{leaked} through the mount"
    assert "Traceback" not in daemon.log()
