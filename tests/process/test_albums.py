"""The view a music lover expects (issue 13), on a real mount of real tagged FLAC files: an album is
one folder whatever year its tracks carry, and every album folder with art shows it, also under the
`cover.<ext>` name MPD looks for. Expected paths and bytes come from what the test wrote."""

from __future__ import annotations

import os
from pathlib import Path

import mutagen.flac
import numpy as np
import soundfile

from tests.process.conftest import Spawn, assert_clean_log


def _track(path: Path, artist: str, album: str, title: str, number: int, **extra: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(number).integers(-3000, 3000, size=(4410, 2)).astype(np.int16)
    soundfile.write(path, noise, 44100, format="FLAC")
    tags = mutagen.flac.FLAC(path)
    tags["albumartist"], tags["album"], tags["title"], tags["tracknumber"] = artist, album, title, str(number)
    for key, value in extra.items():
        tags[key] = value
    tags.save()


def test_albums_are_whole_and_show_their_art_where_players_look(tmp_path: Path, spawn: Spawn) -> None:
    origin = tmp_path / "origin"
    blue = origin / "Miles Davis - Kind of Blue"
    for number, title in enumerate(["So What", "Freddie Freeloader", "Blue in Green", "All Blues"], 1):
        _track(blue / f"{number}.flac", "Miles Davis", "Kind of Blue", title, number, date="1959")
    _track(blue / "5.flac", "Miles Davis", "Kind of Blue", "Flamenco Sketches", 5)  # no date
    (blue / "Folder.jpg").write_bytes(b"\xff\xd8 the front " + os.urandom(64))
    double = origin / "Two Discs"
    for disc in (1, 2):
        _track(double / f"CD{disc}" / "1.flac", "Band", "Double", f"Song {disc}", 1, discnumber=f"{disc}/2")
        (double / f"CD{disc}" / "cover.jpg").write_bytes(f"disc {disc} art".encode() + os.urandom(32))

    daemon = spawn([origin])
    album = daemon.mountpoint / "Miles Davis" / "Kind of Blue (1959)"
    assert sorted(p.name for p in (daemon.mountpoint / "Miles Davis").iterdir()) == ["Kind of Blue (1959)"]
    assert sorted(p.name for p in album.iterdir()) == [
        "01 So What.flac",
        "02 Freddie Freeloader.flac",
        "03 Blue in Green.flac",
        "04 All Blues.flac",
        "05 Flamenco Sketches.flac",
        "Folder.jpg",
        "cover.jpg",
    ]
    assert (album / "cover.jpg").read_bytes() == (blue / "Folder.jpg").read_bytes()
    assert (album / "05 Flamenco Sketches.flac").read_bytes() == (blue / "5.flac").read_bytes()
    discs = daemon.mountpoint / "Band" / "Double"
    assert sorted(p.name for p in discs.iterdir()) == [
        "1-01 Song 1.flac",
        "2-01 Song 2.flac",
        "cover (CD2).jpg",
        "cover.jpg",
    ]
    assert (discs / "cover.jpg").read_bytes() == (double / "CD1" / "cover.jpg").read_bytes()
    assert (discs / "cover (CD2).jpg").read_bytes() == (double / "CD2" / "cover.jpg").read_bytes()
    assert_clean_log(daemon)


def test_a_track_reached_by_several_paths_is_shown_once_at_its_real_path(
    tmp_path: Path, spawn: Spawn
) -> None:
    """Symlinks and hard links inside an origin (issue 13.3): one copy of each track, at the path that
    reaches it without a symlink (hard links: the first path in byte order), with the album's art."""
    origin = tmp_path / "origin"
    album = origin / "Album"
    for number in (1, 2, 3):
        _track(album / f"{number}.flac", "Band", "Record", f"Song {number}", number)
    (album / "cover.jpg").write_bytes(b"\xff\xd8 record art " + os.urandom(64))
    (origin / "A link to the album").symlink_to("Album")  # walked before Album if links were not deferred
    favourites = origin / "Favourites"
    favourites.mkdir()
    (favourites / "best.flac").symlink_to("../Album/1.flac")
    os.link(album / "2.flac", album / "2 again.flac")  # a hard link beside the track, before it in byte order
    os.link(album / "3.flac", origin / "0 three.flac")  # a hard link sorting before the album
    hidden = origin / ".archive" / "Old"
    _track(hidden / "1.flac", "Other", "Kept Away", "Only Here", 1)
    (origin / "Old").symlink_to(".archive/Old")  # the only way to reach this track

    daemon = spawn([origin])
    shown = daemon.mountpoint / "Band" / "Record"
    assert sorted(p.name for p in daemon.mountpoint.iterdir()) == ["Band", "Other"]
    assert sorted(p.name for p in shown.iterdir()) == [
        "01 Song 1.flac",
        "02 Song 2.flac",
        "03 Song 3.flac",
        "cover.jpg",
    ]
    for number in (1, 2, 3):
        assert (shown / f"0{number} Song {number}.flac").read_bytes() == (
            album / f"{number}.flac"
        ).read_bytes()
    assert (shown / "cover.jpg").read_bytes() == (album / "cover.jpg").read_bytes()
    only = daemon.mountpoint / "Other" / "Kept Away" / "01 Only Here.flac"
    assert only.read_bytes() == (hidden / "1.flac").read_bytes()
    origins = {os.getxattr(shown / f"0{n} Song {n}.flac", "user.musicfs.origin").decode() for n in (1, 2, 3)}
    assert origins == {str(album / "1.flac"), str(album / "2 again.flac"), str(origin / "0 three.flac")}
    assert "symlink loop" not in daemon.log()
    assert_clean_log(daemon)
