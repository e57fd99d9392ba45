"""Bad input and hostile surroundings get one clear line and a documented exit code, never a traceback.

Each case is made the way the world makes it: config files that are binary, UTF-16 or deeply nested; a
tiny tmpfs filled up as the state disk; real non-root users (useradd) who cannot open /dev/fuse, may
not use allow_other, cannot write the mountpoint or the demo folder, or try to end root's mount; a
reader that closed stdout; a daemon stopped with SIGSTOP. The commands that mount run with
`--log-level WARNING`, so the error line is all they may print.

A non-root user runs in a private mount namespace (`unshare --mount`), where /dev/fuse and
/etc/fuse.conf are bind mounts of the test's own copies and, where the interpreter lives under a
folder other users cannot enter (a 0700 /root holding pyenv), that folder is covered by one they can;
nothing of the host changes, and everything mounted there goes when the namespace ends.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from chaos.daemon import MUSICFS
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, musicfs

pytestmark = pytest.mark.failure_mode("user-errors")

QUIET = ("--log-level", "WARNING")


def assert_one_line(stderr: str, returncode: int, expected_code: int, *says: str) -> None:
    """Exactly one `musicfs: error:` line that says each of `says`, and the exit code."""
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("musicfs: error: "), stderr
    for text in says:
        assert text in stderr, (text, stderr)
    assert returncode == expected_code, (returncode, stderr)


# --- config files ----------------------------------------------------------------------------------

CONFIGS = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ": not UTF-8 (line 1: byte 0x89)"),
    "utf-16": ('state_dir = "/var/lib/musicfs"\n'.encode("utf-16"), "is UTF-16; save it as UTF-8"),
    "bad-byte": (b'template = "{artist}/{title}"\nstate_dir = "/srv/caf\xe9"\n', "(line 2: byte 0xe9)"),
    "deep": (b"origin = " + b"[" * 50_000 + b"]" * 50_000 + b"\n", ": nested too deeply"),
    "nul-state-dir": (b'state_dir = "/var/lib/a\\u0000b"\n', ": NUL character in 'state_dir'"),
    "nul-cache-dir": (b'cache_dir = "/var/cache/a\\u0000b"\n', ": NUL character in 'cache_dir'"),
}


@pytest.mark.parametrize("command", ["scan", "mount", "fsck"])
@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_config_file_musicfs_cannot_use(
    tmp_path: Path, demo_library: DemoLibrary, case: str, command: str
) -> None:
    content, says = CONFIGS[case]
    config = tmp_path / "musicfs.toml"
    config.write_bytes(content)
    args = ["--config", str(config)]
    if command != "fsck":
        args += ["--origin", str(demo_library.root)]
    if command == "mount":
        args.insert(0, str(tmp_path / "no-such-mountpoint"))  # should the config pass, no mount starts
    done = musicfs(command, *args, timeout=60)
    assert_one_line(done.stderr, done.returncode, 2, str(config), says)


# --- the state directory ---------------------------------------------------------------------------


def test_fsck_of_a_state_dir_that_does_not_exist(tmp_path: Path) -> None:
    typo = tmp_path / "stat-dir"
    done = musicfs("fsck", "--state-dir", str(typo), "--cache-dir", str(tmp_path / "cache"))
    assert_one_line(done.stderr, done.returncode, 5, f"state dir {typo} does not exist")
    assert "no problems found" not in done.stdout
    assert not typo.exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs, unmounted after the test whatever happens."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    options = "size=256k,mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "musicfs-test", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("room", [0, 16 * 1024], ids=["no-room", "room-for-the-lock"])
def test_a_full_state_disk(small_disk: Path, demo_library: DemoLibrary, spawn: Spawn, room: int) -> None:
    with open(small_disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError, match="No space"):
        while True:
            filler.write(b"\0" * 4096)
    if room:
        os.truncate(small_disk / "filler", os.path.getsize(small_disk / "filler") - room)
    daemon = spawn([demo_library.root], state_dir=small_disk, args=QUIET, ready=False)
    code = daemon.wait_exit(60)
    assert_one_line(daemon.log(), code, 5, f"no space left on the disk of state dir {small_disk}")


# --- stdout closed by its reader -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "tree"])
def test_stdout_closed_by_its_reader(demo_library: DemoLibrary, spawn: Spawn, command: str) -> None:
    """`musicfs status | head -1`: the reader is gone before the output is; stop quietly (141)."""
    args = ["--origin", str(demo_library.root), "--log-level", "ERROR"]
    if command == "status":
        args = [str(spawn([demo_library.root]).mountpoint)]
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that is already gone: every write fails with EPIPE
    try:
        done = subprocess.run(
            [MUSICFS, command, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


# --- a stopped daemon ------------------------------------------------------------------------------


def test_status_and_unmount_of_a_stopped_daemon_answer_in_time(
    demo_library: DemoLibrary, spawn: Spawn
) -> None:
    daemon = spawn([demo_library.root])
    daemon.signal(signal.SIGSTOP)
    try:
        for args, limit in ((["status"], 10.0), (["unmount", "--timeout", "3"], 3.0)):
            started = time.monotonic()
            done = musicfs(*args, str(daemon.mountpoint), timeout=60)
            took = time.monotonic() - started
            says = f"MusicFS at {daemon.mountpoint} does not answer"
            assert_one_line(done.stderr, done.returncode, 1, says)
            print(f"musicfs {args[0]} against a stopped daemon answered in {took:.2f} s (limit {limit:g} s)")
            # Bounded, not hung: the bound leaves room for a loaded machine's interpreter start-up.
            assert took < 2 * limit + 5, (args, took)
    finally:
        daemon.signal(signal.SIGCONT)
    assert daemon.serving_pid() == daemon.pid  # left alone, it serves on
    assert musicfs("status", str(daemon.mountpoint)).returncode == 0


# --- real non-root users ---------------------------------------------------------------------------


@pytest.fixture
def user() -> Iterator[str]:
    """A real user without a home, removed after the test."""
    name = f"mfs-{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def shared_dir(demo_library: DemoLibrary) -> Iterator[Path]:
    """A folder other users can enter (pytest's own is 0700), with a readable copy of the library."""
    folder = Path(tempfile.mkdtemp(prefix="musicfs-users-", dir="/tmp"))
    folder.chmod(0o755)
    shutil.copytree(demo_library.root / "Music" / "Sigur Rós", folder / "library")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder / "mnt")], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def as_user(
    user: str,
    args: Sequence[str],
    scratch: Path,
    *,
    fuse_mode: int = 0o666,
    fuse_conf: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real `musicfs ARGS` as `user`, with /dev/fuse of mode `fuse_mode` and /etc/fuse.conf
    holding `fuse_conf`, in a private mount namespace (see the module docstring)."""
    scratch.mkdir()
    q = shlex.quote
    fuse = os.stat("/dev/fuse").st_rdev
    lines = [
        f"mount -t tmpfs -o mode=0755,size=1m musicfs-test {q(str(scratch))}",
        f"mknod -m {fuse_mode:o} {q(str(scratch / 'fuse'))} c {os.major(fuse)} {os.minor(fuse)}",
        f"mount --bind {q(str(scratch / 'fuse'))} /dev/fuse",
        f"printf %s {q(fuse_conf)} > {q(str(scratch / 'fuse.conf'))}",
        f"if [ -e /etc/fuse.conf ]; then mount --bind {q(str(scratch / 'fuse.conf'))} /etc/fuse.conf; fi",
        *_reach_interpreter(scratch),
        'exec runuser -u "$0" -- "$@"',
    ]
    command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", "\n".join(lines)]
    process = subprocess.Popen(
        [*command, user, MUSICFS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the session we started, by its leader's PID
        stdout, stderr = process.communicate()
        raise AssertionError(f"musicfs {args} as {user} did not end within {timeout} s: {stderr}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _reach_interpreter(scratch: Path) -> list[str]:
    """Shell lines that cover each folder on the way to the interpreter and to the `musicfs` script
    that others cannot enter (a 0700 /root holding pyenv, tox's 0700 .tox) with a tmpfs they can,
    holding bind mounts of the entries needed below it (none on a machine without such folders)."""
    needed: dict[Path, set[str]] = {}
    for target in (os.path.realpath(sys.executable), os.path.realpath(MUSICFS)):
        parts = Path(target).parts
        for depth in range(1, len(parts) - 1):
            folder = Path(*parts[:depth])
            if not os.stat(folder).st_mode & 0o001:
                needed.setdefault(folder, set()).add(parts[depth])
    lines = []
    for number, folder in enumerate(sorted(needed, key=lambda f: len(f.parts))):
        children = sorted(needed[folder])
        keeps = [scratch / f"keep{number}-{index}" for index in range(len(children))]
        for keep, child in zip(keeps, children, strict=True):
            lines += [
                f"mkdir {shlex.quote(str(keep))}",
                f"mount --bind {shlex.quote(str(folder / child))} {shlex.quote(str(keep))}",
            ]
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m musicfs-test {shlex.quote(str(folder))}")
        for keep, child in zip(keeps, children, strict=True):
            lines += [
                f"mkdir {shlex.quote(str(folder / child))}",
                f"mount --bind {shlex.quote(str(keep))} {shlex.quote(str(folder / child))}",
            ]
    return lines


def _users_mount(shared_dir: Path, user: str, *, own_mountpoint: bool = True) -> list[str]:
    """Arguments of `musicfs mount` for `user`: a state dir and (unless told) a mountpoint it owns."""
    for name in ("state", "mnt"):
        (shared_dir / name).mkdir()
    owned = ("state", "mnt") if own_mountpoint else ("state",)
    for name in owned:
        shutil.chown(shared_dir / name, user)
    return [
        "mount",
        str(shared_dir / "mnt"),
        "--origin",
        str(shared_dir / "library"),
        "--state-dir",
        str(shared_dir / "state"),
        *QUIET,
    ]


def test_a_user_without_access_to_dev_fuse(user: str, shared_dir: Path) -> None:
    done = as_user(user, _users_mount(shared_dir, user), shared_dir / "ns", fuse_mode=0o600)
    assert_one_line(
        done.stderr, done.returncode, 7, f"cannot mount {shared_dir / 'mnt'}", "/dev/fuse: Permission denied"
    )


def test_allow_other_without_user_allow_other(user: str, shared_dir: Path) -> None:
    args = [*_users_mount(shared_dir, user), "--allow-other"]
    done = as_user(user, args, shared_dir / "ns", fuse_conf="# mount_max = 1000\n")
    assert_one_line(done.stderr, done.returncode, 7, f"cannot mount {shared_dir / 'mnt'}", "user_allow_other")


def test_a_mount_that_fusermount_refuses(user: str, shared_dir: Path) -> None:
    """A failed FUSE mount: the user may use FUSE but not write to the mountpoint (root's, 0755)."""
    done = as_user(user, _users_mount(shared_dir, user, own_mountpoint=False), shared_dir / "ns")
    assert_one_line(
        done.stderr, done.returncode, 7, f"cannot mount {shared_dir / 'mnt'}", "no write access to mountpoint"
    )


def test_demo_into_a_folder_the_user_cannot_write(user: str, shared_dir: Path) -> None:
    destination = shared_dir / "library" / "demo"  # root's folder, 0755
    done = as_user(user, ["demo", str(destination)], shared_dir / "ns")
    assert_one_line(done.stderr, done.returncode, 1, f"cannot write {destination}: Permission denied")
    assert not destination.exists()


def test_another_user_cannot_stop_roots_allow_other_mount(
    user: str, shared_dir: Path, demo_library: DemoLibrary, spawn: Spawn
) -> None:
    daemon = spawn([demo_library.root], mountpoint=shared_dir / "mnt", args=["--allow-other"])
    mnt = str(daemon.mountpoint)
    done = as_user(user, ["unmount", mnt], shared_dir / "ns1")
    assert_one_line(done.stderr, done.returncode, 1, f"{mnt} was mounted by root; only root can unmount it")
    done = as_user(user, ["shutdown", mnt], shared_dir / "ns2")
    assert_one_line(done.stderr, done.returncode, 1, "cannot talk to MusicFS", "Permission denied")
    assert daemon.serving_pid() == daemon.pid
    assert "shutting down" not in daemon.log()
