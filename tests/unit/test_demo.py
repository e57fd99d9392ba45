"""Tests of musicfs.demo: the generated library is real, complete, deterministic; bulk generation."""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
import zlib
from pathlib import Path

import mutagen
import pytest

from musicfs.core.kinds import AUDIO_EXTENSIONS, is_cover_name
from musicfs.core.types import TagSet
from musicfs.demo import DemoLibrary, containers, generate_bulk, generate_library
from musicfs.tags import read_tags


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> DemoLibrary:
    return generate_library(tmp_path_factory.mktemp("library"), seed=7, seconds=0.3)


def _files(root: Path) -> dict[bytes, bytes]:
    """Every file below root: relative raw name -> content."""
    found = {}
    for folder, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, os.fsencode(root))] = file.read()
    return found


def _signature(library: DemoLibrary) -> list[tuple[str, object]]:
    return [(str(track.path.relative_to(library.root)), track.expected_tags()) for track in library.tracks]


def test_same_seed_gives_same_names_tags_and_bytes(library: DemoLibrary, tmp_path: Path) -> None:
    again = generate_library(tmp_path / "again", seed=7, seconds=0.3)
    assert _signature(again) == _signature(library)
    assert _files(again.root) == _files(library.root)


def test_other_seed_changes_audio_not_names_or_tags(library: DemoLibrary, tmp_path: Path) -> None:
    other = generate_library(tmp_path / "other", seed=8, seconds=0.3)
    assert _signature(other) == _signature(library)
    mine, theirs = _files(library.root), _files(other.root)
    assert mine.keys() == theirs.keys()
    assert sum(mine[name] != theirs[name] for name in mine) >= len(library.tracks)


def test_every_audio_file_but_the_corrupt_one_opens_with_mutagen(library: DemoLibrary) -> None:
    for track in library.tracks:
        if track.corrupt:
            with pytest.raises(mutagen.MutagenError):
                mutagen.File(os.fsencode(track.path))
        else:
            audio = mutagen.File(os.fsencode(track.path))
            assert audio is not None and audio.info.length == pytest.approx(0.3, abs=0.1), track.path


def test_the_m4a_holds_apple_lossless(library: DemoLibrary) -> None:
    (m4a,) = [track.path for track in library.tracks if track.path.suffix == ".m4a"]
    info = mutagen.File(m4a).info
    assert (info.codec, info.sample_rate, info.channels, info.bits_per_sample) == (
        "alac",
        containers.RATE,
        1,
        16,
    )


def test_library_holds_the_promised_edge_cases(library: DemoLibrary) -> None:
    tracks = library.tracks
    assert 20 <= len(tracks) <= 30
    assert len({track.artist for track in tracks if track.artist and ";" not in track.artist}) >= 3
    assert {track.disc for track in tracks if track.album == "東京の夜"} == {1, 2}
    compilation = [track for track in tracks if track.compilation]
    assert len({track.artist for track in compilation}) >= 3
    assert any(track.albumartist is None for track in compilation)
    assert any(track.album and track.date is None for track in tracks)
    assert any(track.expected_tags() == TagSet() and not track.corrupt for track in tracks)
    assert any(track.title and track.artist is None and track.album is None for track in tracks)
    assert any("/" in (track.title or "") and ":" in (track.title or "") for track in tracks)
    assert any(ord(char) > 0x3000 for track in tracks for char in str(track.path))
    assert sum(track.corrupt for track in tracks) == 1
    keys = [(track.artist, track.album, track.track, track.title) for track in tracks if track.title]
    assert len(keys) > len(set(keys)), "two tracks should collide on artist/album/number/title"
    raw_names = [os.fsencode(track.path.name) for track in tracks]
    assert b"caf\xe9.flac" in raw_names
    with pytest.raises(UnicodeDecodeError):
        b"caf\xe9.flac".decode("utf-8")


def test_messy_layout_is_not_artist_album(library: DemoLibrary) -> None:
    parents = {track.path.parent.name for track in library.tracks}
    assert "CD1" in parents and "F01" in parents and "misc" in parents


def test_covers_are_valid_images_with_cover_names(library: DemoLibrary) -> None:
    names = sorted(path.name for path in library.covers)
    assert names == ["cover.png", "folder.jpg"]
    assert all(is_cover_name(path.name) for path in library.covers)
    png = next(path for path in library.covers if path.suffix == ".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(png):  # every chunk's CRC holds and the image data inflates to the right size
        (size,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + size]
        assert struct.unpack(">I", png[pos + 8 + size : pos + 12 + size])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            assert len(zlib.decompress(body)) == height * (1 + 3 * width)
        pos += 12 + size
    jpeg = next(path for path in library.covers if path.suffix == ".jpg").read_bytes()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9" and b"JFIF\x00" in jpeg
    assert all(path.parent in {track.path.parent for track in library.tracks} for path in library.covers)


def test_notes_file_is_not_audio(library: DemoLibrary) -> None:
    (notes,) = library.others
    assert notes.name == "notes.txt" and notes.is_file()
    assert notes.suffix[1:] not in AUDIO_EXTENSIONS


def test_bulk_gives_readable_distinct_tracks(tmp_path: Path) -> None:
    bulk = generate_bulk(tmp_path / "bulk", 200, seed=3)
    assert len(bulk.tracks) == 200
    files = sorted(path for path in (tmp_path / "bulk").rglob("*") if path.is_file())
    assert files == sorted(track.path for track in bulk.tracks)
    seen = set()
    for track in bulk.tracks:
        tags = read_tags(str(track.path))
        assert tags.duration is not None and tags.duration > 0
        assert dataclasses.replace(tags, duration=None) == track.expected_tags()
        seen.add((tags.artist, tags.album, tags.title, tags.track))
    assert len(seen) == 200
    assert len({track.artist for track in bulk.tracks}) == 2
    assert len({track.album for track in bulk.tracks}) == 20


def test_bulk_reuses_a_given_template(library: DemoLibrary, tmp_path: Path) -> None:
    template = next(track.path for track in library.tracks if track.path.name == "untagged.flac")
    bulk = generate_bulk(
        tmp_path / "bulk", 12, template_file=template, tracks_per_album=5, albums_per_artist=2
    )
    assert [track.track for track in bulk.tracks] == [1, 2, 3, 4, 5] * 2 + [1, 2]
    for track in bulk.tracks:
        assert mutagen.File(track.path).info.length == pytest.approx(0.3, abs=0.01)
        assert read_tags(str(track.path)).title == track.title


def test_bulk_rejects_a_template_that_is_not_flac(library: DemoLibrary, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FLAC"):
        generate_bulk(tmp_path / "bulk", 1, template_file=library.others[0])


def test_silent_mp3_fallback_is_a_real_mp3(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp3"
    path.write_bytes(containers.silent_mp3(1.0))
    audio = mutagen.File(path)
    assert type(audio).__name__ == "MP3"
    assert audio.info.length == pytest.approx(1.0, abs=0.05)


def test_missing_audio_modules_give_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(RuntimeError, match=r"musicfs\[demo\]"):
        generate_library(tmp_path / "lib")
