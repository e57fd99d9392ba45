"""Real MPD against the real mount: a stopped, restarting or crashed MusicFS never empties its library.

While MusicFS is stopped its mountpoint is an empty folder, and `mpc update` on an empty music
directory deletes every song from MPD's database; on a missing folder (or a dead mount) MPD keeps it.
So the README points players at a constant folder inside the mount (template ``Library/...``,
``music_directory = MOUNTPOINT/Library``). These tests run that setup through every kind of stop, and
the unsafe one (``music_directory = MOUNTPOINT``) to show why the advice matters.

Each MPD is the test's own (`mpd --no-daemon` with its config, database and state files in
tmp_path, on 127.0.0.1 and a free high port, null audio output), stopped by PID in teardown; an MPD
of the system, if one runs, is never touched. The songs MPD must list are known from the tags the
test wrote, never asked of the daemon.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.daemon import DaemonProcess
from chaos.mountinfo import mount_at
from musicfs.demo import generate_bulk
from tests.process.conftest import Spawn, assert_clean_log, musicfs

TEMPLATE = "Library/{albumartist}/{album}/{title}.{ext}"
TRACKS = 6


class Mpd:
    """One MPD process of the test and the `mpc` commands that talk to it."""

    def __init__(self, folder: Path, music_directory: Path) -> None:
        self.folder = folder
        self.music_directory = music_directory
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        folder.mkdir()

    @property
    def log_path(self) -> Path:
        return self.folder / "mpd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 20) -> None:
        """Starts MPD on a free port; a port taken meanwhile by someone else gives another try."""
        for _ in range(3):
            self.port = _free_port()
            config = self.folder / "mpd.conf"
            config.write_text(_config(self.folder, self.music_directory, self.port))
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    ["mpd", "--no-daemon", "--stderr", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if self._wait_greeting(timeout):
                return
            if "Address already in use" not in self.log():
                break
        raise AssertionError(f"mpd did not answer on port {self.port}; its log:\n{self.log()}")

    def _wait_greeting(self, timeout: float) -> bool:
        """True once MPD says "OK MPD" on its port; False if it exited or the deadline passed."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as sock:
                if sock.recv(64).startswith(b"OK MPD"):
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stops our MPD by its PID (SIGTERM, then SIGKILL after 10 s); a no-op once it is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def mpc(self, *args: str) -> str:
        done = subprocess.run(
            ["mpc", "--host", "127.0.0.1", "--port", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"mpc {' '.join(args)}: {done.stderr}\nmpd log:\n{self.log()}"
        return done.stdout

    def update(self) -> None:
        """`mpc update --wait`: MPD walks its music directory and brings its database in line."""
        self.mpc("--quiet", "update", "--wait")

    def songs(self) -> set[str]:
        """Every song in MPD's database (`mpc listall`), as paths below its music directory."""
        return set(self.mpc("listall").splitlines())

    def song_count(self) -> int:
        """The song count of MPD's own statistics (`mpc stats`)."""
        for line in self.mpc("stats").splitlines():
            key, _, value = line.partition(":")
            if key == "Songs":
                return int(value)
        raise AssertionError("mpc stats shows no song count")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(folder: Path, music_directory: Path, port: int) -> str:
    return f"""\
music_directory "{music_directory}"
db_file "{folder / "database"}"
state_file "{folder / "state"}"
bind_to_address "127.0.0.1"
port "{port}"
auto_update "no"
zeroconf_enabled "no"
audio_output {{
    type "null"
    name "null"
}}
decoder {{
    plugin "wildmidi"
    enabled "no"
}}
"""


StartMpd = Callable[[Path], Mpd]


@pytest.fixture
def mpd(tmp_path: Path) -> Iterator[StartMpd]:
    """Start our own MPDs on a music directory; each one is stopped by PID afterwards, even on failure."""
    assert shutil.which("mpd") and shutil.which("mpc"), "mpd or mpc is missing: install Debian's mpd and mpc"
    started: list[Mpd] = []

    def start(music_directory: Path) -> Mpd:
        player = Mpd(tmp_path / f"mpd{len(started)}", music_directory)
        started.append(player)
        player.start()
        return player

    yield start
    for player in started:
        player.stop()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return tmp_path / "origin"


@pytest.fixture
def songs(origin: Path) -> set[str]:
    """Writes six real tagged FLAC tracks to `origin`; returns where TEMPLATE puts them below Library/."""
    library = generate_bulk(origin, TRACKS, tracks_per_album=3, albums_per_artist=1)
    expected = {f"{track.albumartist}/{track.album}/{track.title}.flac" for track in library.tracks}
    assert len(expected) == TRACKS
    return expected


def _assert_stopped(daemon: DaemonProcess) -> None:
    """The window the tests are about: nothing mounted, the mountpoint an empty folder."""
    assert mount_at(daemon.mountpoint) is None
    assert list(daemon.mountpoint.iterdir()) == []


@pytest.mark.allow_log(r"the last run did not stop cleanly", r"cleaning a stale fuse.musicfs mount")
@pytest.mark.failure_mode("7.3")
def test_mpd_on_the_library_folder_keeps_every_song_through_stops_crashes_and_restarts(
    origin: Path, songs: set[str], spawn: Spawn, mpd: StartMpd, tmp_path: Path
) -> None:
    args = ["--template", TEMPLATE]
    daemon = spawn([origin], args=args)
    player = mpd(daemon.mountpoint / "Library")
    player.update()
    assert player.songs() == songs

    # A clean stop by signal (as `systemctl stop`), then a restart on the same state dir.
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    _assert_stopped(daemon)
    player.update()
    assert player.songs() == songs and player.song_count() == TRACKS
    assert_clean_log(daemon)
    daemon = spawn([origin], state_dir=tmp_path / "state", args=args)
    player.update()
    assert player.songs() == songs

    # `musicfs shutdown`, then a restart.
    done = musicfs("shutdown", str(daemon.mountpoint), timeout=60)
    assert done.returncode == 0, done.stderr
    assert daemon.wait_exit(30) == 0
    _assert_stopped(daemon)
    player.update()
    assert player.songs() == songs and player.song_count() == TRACKS
    assert_clean_log(daemon)
    daemon = spawn([origin], state_dir=tmp_path / "state", args=args)
    player.update()
    assert player.songs() == songs

    # A crash: first a dead mount, then the unit's ExecStopPost cleans it before Restart= starts again.
    daemon.kill9()
    player.update()
    assert player.songs() == songs
    subprocess.run(["fusermount3", "-u", "-z", str(daemon.mountpoint)], check=True, timeout=30)
    _assert_stopped(daemon)
    player.update()
    assert player.songs() == songs and player.song_count() == TRACKS
    daemon = spawn([origin], state_dir=tmp_path / "state", args=args)
    player.update()
    assert player.songs() == songs

    # What MPD saved is whole too: restarted from its database file alone, it lists every song.
    player.stop()
    player.start()
    assert player.songs() == songs and player.song_count() == TRACKS
    assert_clean_log(daemon)


@pytest.mark.failure_mode("7.3")
def test_mpd_on_the_mountpoint_itself_loses_every_song_while_musicfs_is_stopped(
    origin: Path, songs: set[str], spawn: Spawn, mpd: StartMpd
) -> None:
    # Why the README says MOUNTPOINT/Library: this is the setup it warns against.
    daemon = spawn([origin], args=["--template", TEMPLATE])
    player = mpd(daemon.mountpoint)
    player.update()
    assert player.songs() == {f"Library/{song}" for song in songs}
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    _assert_stopped(daemon)
    player.update()
    assert player.songs() == set() and player.song_count() == 0
