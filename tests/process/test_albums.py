"""The view a music lover expects (issue 13), on a real mount of real tagged FLAC files: an album is
one folder whatever year its tracks carry, and every album folder with art shows it, also under the
`cover.<ext>` name MPD looks for. Expected paths and bytes come from what the test wrote."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import mutagen.flac
import mutagen.id3
import mutagen.mp4
import numpy as np
import pytest
import soundfile

from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, assert_clean_log, musicfs, wait_until


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


def _embed_flac(path: Path, data: bytes, kind: int = 3, mime: str = "image/jpeg") -> None:
    picture = mutagen.flac.Picture()
    picture.type, picture.mime, picture.data = kind, mime, data
    audio = mutagen.flac.FLAC(path)
    audio.add_picture(picture)
    audio.save()


def test_an_album_without_a_cover_file_shows_the_picture_its_tracks_embed(
    tmp_path: Path, spawn: Spawn, demo_library: DemoLibrary
) -> None:
    """Issue 13.2: the embedded front cover as the album's cover.jpg / cover.png, byte for byte, in
    FLAC, MP3 (ID3 APIC) and MP4 (covr); never when the album has a cover file of its own."""
    origin = tmp_path / "origin"
    jpeg = b"\xff\xd8\xff\xe0 flac front " + os.urandom(5000)
    for number in (1, 2):
        _track(origin / "Flac" / f"{number}.flac", "Band", "Embedded", f"Song {number}", number)
    _embed_flac(
        origin / "Flac" / "1.flac", b"\x89PNG\r\n\x1a\n back " + os.urandom(100), kind=4, mime="image/png"
    )
    _embed_flac(origin / "Flac" / "2.flac", jpeg)
    png = b"\x89PNG\r\n\x1a\n mp3 front " + os.urandom(4000)
    mp3 = origin / "Mp3" / "1.mp3"
    mp3.parent.mkdir(parents=True)
    shutil.copyfile(next(t.path for t in demo_library.tracks if t.path.suffix == ".mp3"), mp3)
    id3: Any = mutagen.id3.ID3()
    id3.add(mutagen.id3.TPE2(encoding=3, text="Band"))
    id3.add(mutagen.id3.TALB(encoding=3, text="Tagged MP3"))
    id3.add(mutagen.id3.TIT2(encoding=3, text="Only"))
    id3.add(mutagen.id3.TRCK(encoding=3, text="1"))
    id3.add(mutagen.id3.APIC(encoding=3, mime="image/png", type=3, desc="", data=png))
    id3.save(mp3)
    mp4_art = b"\xff\xd8\xff\xdb mp4 front " + os.urandom(3000)
    m4a = origin / "Mp4" / "1.m4a"
    m4a.parent.mkdir(parents=True)
    shutil.copyfile(next(t.path for t in demo_library.tracks if t.path.suffix == ".m4a"), m4a)
    audio: Any = mutagen.mp4.MP4(m4a)
    audio.clear()
    audio["aART"], audio["\xa9alb"], audio["\xa9nam"], audio["trkn"] = ["Band"], ["Apple"], ["Only"], [(1, 0)]
    audio["covr"] = [mutagen.mp4.MP4Cover(mp4_art, imageformat=mutagen.mp4.MP4Cover.FORMAT_JPEG)]
    audio.save()
    _track(origin / "Own" / "1.flac", "Band", "Has Its Own", "Song", 1)
    _embed_flac(origin / "Own" / "1.flac", jpeg)
    (origin / "Own" / "front.png").write_bytes(b"\x89PNG\r\n\x1a\n own " + os.urandom(64))

    daemon = spawn([origin])
    band = daemon.mountpoint / "Band"
    assert sorted(p.name for p in (band / "Embedded").iterdir()) == [
        "01 Song 1.flac",
        "02 Song 2.flac",
        "cover.jpg",
    ]
    assert (band / "Embedded" / "cover.jpg").read_bytes() == jpeg
    assert (band / "Embedded" / "cover.jpg").stat().st_size == len(jpeg)
    assert sorted(p.name for p in (band / "Tagged MP3").iterdir()) == ["01 Only.mp3", "cover.png"]
    assert (band / "Tagged MP3" / "cover.png").read_bytes() == png
    assert (band / "Apple" / "cover.jpg").read_bytes() == mp4_art
    own = band / "Has Its Own"
    assert sorted(p.name for p in own.iterdir()) == ["01 Song.flac", "cover.png", "front.png"]
    assert (own / "cover.png").read_bytes() == (origin / "Own" / "front.png").read_bytes()
    # Read in small pieces at odd offsets, as a player's image loader may.
    with (band / "Embedded" / "cover.jpg").open("rb", buffering=0) as stream:
        stream.seek(4097)
        assert stream.read(10) == jpeg[4097:4107]
        assert stream.read(10**6) == jpeg[4107:]
        assert stream.read(10) == b""
    assert_clean_log(daemon)


def _embed_vorbis(path: Path, data: bytes, mime: str = "image/jpeg") -> None:
    picture = mutagen.flac.Picture()
    picture.type, picture.mime, picture.data = 3, mime, data
    audio: Any = mutagen.File(path)
    audio["metadata_block_picture"] = [base64.b64encode(picture.write()).decode()]
    audio.save()


def _ogg_track(source: Path, path: Path, album: str, number: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    audio: Any = mutagen.File(path)
    audio.clear()
    audio["albumartist"], audio["album"], audio["title"] = "Band", album, f"Song {number}"
    audio["tracknumber"] = str(number)
    audio.save()


def _read_or_error(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@pytest.mark.allow_log(r"open failed: Vorbis/2\.ogg changed since the last scan")
def test_ogg_vorbis_and_opus_albums_show_the_picture_their_comments_embed(
    tmp_path: Path, spawn: Spawn, demo_library: DemoLibrary
) -> None:
    """Issue 13.2: a Vorbis comment's METADATA_BLOCK_PICTURE (base64 over Ogg pages, no byte range to
    read through) is decoded from the track at open and shown as the album's cover, byte for byte;
    after a retag the old picture is never served, and the new one is once the rescan saw it."""
    origin = tmp_path / "origin"
    sources = {s: next(t.path for t in demo_library.tracks if t.path.suffix == s) for s in (".ogg", ".opus")}
    jpeg = b"\xff\xd8\xff\xe0 vorbis front " + os.urandom(150_000)  # spread over several Ogg pages
    png = b"\x89PNG\r\n\x1a\n opus front " + os.urandom(3000)
    for number in (1, 2):
        _ogg_track(sources[".ogg"], origin / "Vorbis" / f"{number}.ogg", "Vorbis Album", number)
        _ogg_track(sources[".opus"], origin / "Opus" / f"{number}.opus", "Opus Album", number)
    _embed_vorbis(origin / "Vorbis" / "2.ogg", jpeg)
    _embed_vorbis(origin / "Opus" / "1.opus", png, "image/png")

    daemon = spawn([origin])
    vorbis, opus = daemon.mountpoint / "Band" / "Vorbis Album", daemon.mountpoint / "Band" / "Opus Album"
    assert sorted(p.name for p in vorbis.iterdir()) == ["01 Song 1.ogg", "02 Song 2.ogg", "cover.jpg"]
    assert sorted(p.name for p in opus.iterdir()) == ["01 Song 1.opus", "02 Song 2.opus", "cover.png"]
    assert (vorbis / "cover.jpg").stat().st_size == len(jpeg)
    assert (vorbis / "cover.jpg").read_bytes() == jpeg
    assert (opus / "cover.png").read_bytes() == png
    with (vorbis / "cover.jpg").open("rb", buffering=0) as stream:
        stream.seek(70_001)
        assert stream.read(10) == jpeg[70_001:70_011]
        assert stream.read(10**6) == jpeg[70_011:]
        assert stream.read(10) == b""
    assert (vorbis / "02 Song 2.ogg").read_bytes() == (origin / "Vorbis" / "2.ogg").read_bytes()

    retagged = b"\xff\xd8\xff\xe0 new front " + os.urandom(150_000)
    _embed_vorbis(origin / "Vorbis" / "2.ogg", retagged)
    seen: list[bytes | None] = []

    def shows_the_new_picture() -> bool:
        seen.append(_read_or_error(vorbis / "cover.jpg"))
        return seen[-1] == retagged

    wait_until(shows_the_new_picture, "the retagged picture", daemon.log)
    assert all(data in (None, retagged) for data in seen), "an old picture was served after the retag"
    assert_clean_log(daemon)


def test_tree_albums_shows_each_album_folder_its_tracks_year_release_and_cover_source(tmp_path: Path) -> None:
    """Issue 13.5: `musicfs tree --albums` shows the grouping it decided, so a user can see why a
    track landed where it did; bad use is one line and exit 2."""
    origin = tmp_path / "origin"
    blue = origin / "Kind of Blue"
    for number in (1, 2, 3):
        _track(blue / f"{number}.flac", "Miles Davis", "Kind of Blue", f"Song {number}", number, date="1959")
    _track(blue / "4.flac", "Miles Davis", "Kind of Blue", "Song 4", 4)  # no date: joins the album
    (blue / "Folder.jpg").write_bytes(b"\xff\xd8\xff art")
    first, second = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
    _track(origin / "Hits 1" / "1.flac", "ABBA", "Hits", "One", 1, date="1992", musicbrainz_albumid=first)
    _track(origin / "Hits 2" / "1.flac", "ABBA", "Hits", "One", 1, date="1992", musicbrainz_albumid=second)
    _track(origin / "Hits 2" / "2.flac", "ABBA", "Hits", "Two", 2, date="1992", musicbrainz_albumid=second)
    _embed_flac(origin / "Hits 2" / "2.flac", b"\xff\xd8\xff\xe0 embedded" + os.urandom(100))

    done = musicfs("tree", "--albums", "--origin", str(origin))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"ABBA/Hits [11111111] (1992): 1 track, year 1992, release {first}, no cover",
        f"ABBA/Hits [22222222] (1992): 2 tracks, year 1992, release {second}, "
        f"cover embedded in {origin / 'Hits 2' / '2.flac'}",
        f"Miles Davis/Kind of Blue (1959): 4 tracks, year 1959, cover {blue / 'Folder.jpg'}",
    ]
    wrong = musicfs("scan", "--albums", "--origin", str(origin), "--state-dir", str(tmp_path / "state"))
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines()[-1].startswith("musicfs: error:")
