"""Folder listings kept by the kernel (issue 10.1) never go stale, and really are kept.

On a real mount whose kernel caches are warm (every folder listed twice), the origin changes (tracks
and covers added and removed, tracks retagged with mutagen, an origin file renamed), `musicfs rescan`
runs, and every folder is listed again. The expected view comes from the tags the test wrote itself
and the origin files' sizes, never from the daemon; cover images show in their album folder also as
`cover.<ext>` (`musicfs.tree.covers`). Each test runs with the listings mode MusicFS picks for the
installed pyfuse3 ("auto": kernel-cached with the patched build set-up installs, daemon with stock
pyfuse3, which `tox -e stock` proves) and with daemon listings forced (MUSICFS_LISTINGS=daemon).
MUSICFS_TEST_PYFUSE3 says which pyfuse3 this run installed: `patched` (the default) or `stock`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import mutagen.flac
import pytest

from musicfs.demo import DemoLibrary
from tests.process.albums import source_flac, write_track
from tests.process.conftest import Spawn, assert_clean_log, musicfs

BUILD = os.environ.get("MUSICFS_TEST_PYFUSE3", "patched")
AUTO_MODE = {"patched": "kernel-cached", "stock": "daemon"}[BUILD]
MODES = {"auto": AUTO_MODE, "daemon": "daemon"}


@dataclass(frozen=True)
class Tags:
    artist: str
    album: str
    title: str
    track: int

    def viewpath(self) -> str:
        return f"{self.artist}/{self.album}/{self.track:02} {self.title}.flac"


class Origin:
    """An origin folder the test writes, and its own record of what each file is."""

    def __init__(self, root: Path, source: Path) -> None:
        self.root = root
        self.source = source
        self.tracks: dict[str, Tags] = {}
        self.covers: set[str] = set()

    def add(self, relpath: str, tags: Tags) -> None:
        write_track(
            self.source,
            self.root / relpath,
            artist=tags.artist,
            album=tags.album,
            title=tags.title,
            track=tags.track,
        )
        self.tracks[relpath] = tags

    def add_cover(self, relpath: str) -> None:
        (self.root / relpath).write_bytes(b"\xff\xd8 art of " + relpath.encode() + os.urandom(100))
        self.covers.add(relpath)

    def remove(self, relpath: str) -> None:
        (self.root / relpath).unlink()
        self.tracks.pop(relpath, None)
        self.covers.discard(relpath)

    def remove_folder(self, folder: str) -> None:
        shutil.rmtree(self.root / folder)
        for relpath in [p for p in self.tracks if p.startswith(folder + "/")]:
            del self.tracks[relpath]
        self.covers -= {p for p in self.covers if p.startswith(folder + "/")}

    def retag(self, relpath: str, **changes: str) -> None:
        tags = replace(self.tracks[relpath], **changes)
        audio = mutagen.flac.FLAC(self.root / relpath)
        audio["artist"] = audio["albumartist"] = tags.artist
        audio["album"], audio["title"] = tags.album, tags.title
        audio.save()
        self.tracks[relpath] = tags

    def rename(self, relpath: str, new: str) -> None:
        (self.root / relpath).rename(self.root / new)
        self.tracks[new] = self.tracks.pop(relpath)

    def expected_view(self) -> dict[str, int | None]:
        """Every path the mount must show: folders (None) and files (their size in the origin)."""
        view: dict[str, int | None] = {}
        for relpath, tags in self.tracks.items():
            view[tags.viewpath()] = (self.root / relpath).stat().st_size
        for cover in self.covers:
            folder, name = cover.rsplit("/", 1)
            albums = {
                t.viewpath().rsplit("/", 1)[0] for p, t in self.tracks.items() if p.startswith(folder + "/")
            }
            assert len(albums) == 1, "the scenario keeps each cover's tracks in one album"
            album = albums.pop()
            size = (self.root / cover).stat().st_size
            view[f"{album}/{name}"] = size
            stem, ext = os.path.splitext(name)
            if stem.lower() != "cover":
                view[f"{album}/cover{ext.lower()}"] = size
        for path in list(view):
            parts = path.split("/")
            for depth in range(1, len(parts)):
                view["/".join(parts[:depth])] = None
        return view


def walk(root: Path) -> dict[str, int | None]:
    """List every folder of the mount and lstat every entry, as `find -ls` would."""
    shown: dict[str, int | None] = {}
    pending = [root]
    while pending:
        folder = pending.pop()
        for name in os.listdir(folder):
            path = folder / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if path.is_dir():
                shown[relative] = None
                pending.append(path)
            else:
                shown[relative] = info.st_size
    return shown


def requests(mountpoint: Path) -> Counter[str]:
    """The daemon's count of FUSE requests by operation (`musicfs metrics`)."""
    done = musicfs("metrics", str(mountpoint), timeout=30)
    assert done.returncode == 0, done.stderr
    return Counter(
        {
            m[1]: int(m[2])
            for m in re.finditer(r'^musicfs_requests_total\{op="(\w+)"\} (\d+)$', done.stdout, re.M)
        }
    )


def rescan(mountpoint: Path) -> None:
    done = musicfs("rescan", str(mountpoint), timeout=60)
    assert done.returncode == 0, done.stderr


def _start(spawn: Spawn, origin: Path, mode: str) -> tuple[Path, str]:
    daemon = spawn([origin], env={"MUSICFS_LISTINGS": mode})
    expected = MODES[mode]
    assert f"listings: {expected} (" in daemon.log(), daemon.log()
    return daemon.mountpoint, expected


@pytest.fixture
def origin(tmp_path: Path, demo_library: DemoLibrary) -> Origin:
    origin = Origin(tmp_path / "origin", source_flac(demo_library))
    for number, title in enumerate(["One", "Two", "Three"], 1):
        origin.add(f"a/{number}.flac", Tags("Alpha", "First", title, number))
    origin.add_cover("a/Folder.jpg")
    origin.add("b/1.flac", Tags("Beta", "Second", "Uno", 1))
    origin.add("b/2.flac", Tags("Beta", "Second", "Dos", 2))
    origin.add("c/1.flac", Tags("Gamma", "Third", "Eins", 1))
    origin.add_cover("c/cover.png")
    return origin


@pytest.mark.parametrize("mode", sorted(MODES))
def test_listings_follow_every_change_of_the_origin(origin: Origin, spawn: Spawn, mode: str) -> None:
    mnt, _ = _start(spawn, origin.root, mode)

    def changed_then_listed() -> None:
        rescan(mnt)
        expected = origin.expected_view()
        assert walk(mnt) == expected
        assert walk(mnt) == expected  # and what the kernel now keeps is that too

    assert walk(mnt) == walk(mnt) == origin.expected_view()  # every listing is in the kernel's caches

    origin.add("a/4.flac", Tags("Alpha", "First", "Four", 4))  # into a folder the kernel keeps
    origin.add("d/1.flac", Tags("Delta", "Fourth", "Un", 1))  # a new artist in the root
    origin.add("d/2.flac", Tags("Delta", "Fourth", "Deux", 2))
    origin.add_cover("b/front.jpg")  # art (and its cover.jpg) for an album that had none
    changed_then_listed()

    origin.remove("a/2.flac")
    origin.remove_folder("c")  # a whole artist goes
    origin.remove("b/front.jpg")
    changed_then_listed()

    origin.retag("a/3.flac", title="Drei")  # a new name in the same folder
    origin.retag("b/1.flac", album="Second Deluxe")  # moves into a new album folder
    origin.retag("d/1.flac", artist="Epsilon")  # moves into a new artist folder
    origin.rename("d/2.flac", "d/two.flac")  # the same track at a new origin path: the view is unchanged
    changed_then_listed()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_second_walk_asks_the_daemon_for_listings_only_in_daemon_mode(
    origin: Origin, spawn: Spawn, mode: str
) -> None:
    mnt, expected_mode = _start(spawn, origin.root, mode)
    folders = sum(1 for size in origin.expected_view().values() if size is None) + 1  # with the root
    walk(mnt)
    before = requests(mnt)
    assert walk(mnt) == origin.expected_view()
    asked = requests(mnt) - before
    if expected_mode == "kernel-cached":
        assert asked["opendir"] == asked["readdir"] == asked["releasedir"] == asked["lookup"] == 0, asked
        assert before["opendir"] == 1  # answered ENOSYS once: the kernel never asked again
    else:
        assert asked["opendir"] == asked["releasedir"] == folders, asked
        assert asked["readdir"] >= folders, asked


def test_the_version_names_pyfuse3_libfuse_and_the_listings_mode() -> None:
    done = musicfs("--version")
    assert done.returncode == 0, done.stderr
    libfuse = subprocess.run(["pkg-config", "--modversion", "fuse3"], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert lines[:2] == [
        f"musicfs {version('musicfs')}",
        f"pyfuse3 {version('pyfuse3')}, libfuse {libfuse.stdout.strip()}",
    ]
    cached = "yes" if AUTO_MODE == "kernel-cached" else "no"
    assert lines[2].startswith(f"kernel-cached folder listings: {cached} (pyfuse3 {version('pyfuse3')}"), (
        lines
    )


def test_this_run_has_the_pyfuse3_it_expects() -> None:
    """Set-up installs the patched build (tox -e stock the PyPI release): never the other by mistake."""
    assert ("+musicfs." in version("pyfuse3")) == (BUILD == "patched"), version("pyfuse3")


def test_a_listings_mode_that_does_not_exist_is_one_line_and_exit_2(origin: Origin, spawn: Spawn) -> None:
    daemon = spawn([origin.root], env={"MUSICFS_LISTINGS": "fast"}, ready=False)
    assert daemon.wait_exit(30) == 2
    assert daemon.log().strip().splitlines() == [
        "musicfs: error: MUSICFS_LISTINGS must be kernel, daemon or auto, not 'fast'"
    ]
    assert_clean_log(daemon)
