"""Tests of musicfs.tags: reading every generated format, number and year forms, and damaged files."""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import mutagen
import mutagen.apev2
import mutagen.asf
import mutagen.id3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicfs.core.errors import TagReadError
from musicfs.core.kinds import AUDIO_EXTENSIONS, COVER_NAMES, is_cover_name
from musicfs.core.types import TagSet
from musicfs.demo import DemoLibrary, DemoTrack, generate_library
from musicfs.tags import (
    _flatten,
    _tagset,
    parse_number,
    parse_year,
    read_tags,
)

SECONDS = 0.5


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> DemoLibrary:
    return generate_library(tmp_path_factory.mktemp("library"), seconds=SECONDS)


def _by_name(library: DemoLibrary, name: str) -> DemoTrack:
    (track,) = [track for track in library.tracks if track.path.name == name]
    return track


def _copy(library: DemoLibrary, name: str, dest: Path) -> Path:
    """A fresh copy of a generated file, to re-tag."""
    target = dest / name
    shutil.copyfile(_by_name(library, name).path, target)
    return target


def _retag_vorbis(path: Path, **values: str | list[str]) -> None:
    audio = mutagen.File(path)
    audio.tags.clear()
    for key, value in values.items():
        audio.tags[key.replace("_", " ")] = value
    audio.save()


def test_every_generated_track_reads_back_its_tags(library: DemoLibrary) -> None:
    mismatches = {}
    for track in library.tracks:
        if track.corrupt:
            continue
        tags = read_tags(os.fsencode(track.path))
        if dataclasses.replace(tags, duration=None) != track.expected_tags():
            mismatches[track.path.name] = (tags, track.expected_tags())
        assert tags.duration == pytest.approx(SECONDS, abs=0.1), track.path
    assert mismatches == {}


def test_library_covers_every_format_read_tags_claims(library: DemoLibrary) -> None:
    suffixes = {track.path.suffix for track in library.tracks}
    assert {".flac", ".ogg", ".opus", ".mp3", ".m4a", ".wav", ".aiff"} <= suffixes


@pytest.mark.parametrize(
    ("name", "artist", "track", "tracktotal", "disc", "disctotal", "compilation"),
    [
        ("01 hunter.flac", "Björk", 1, 3, None, None, False),  # FLAC, "1/3"
        ("03.flac", "Björk", 3, 3, None, None, False),  # FLAC, "03" + TRACKTOTAL
        ("track1.ogg", "Sigur Rós", 1, 3, 1, 1, False),  # Vorbis TOTALTRACKS / TOTALDISCS
        ("02 - 渋谷.mp3", "山田太郎", 2, 2, 1, 2, False),  # ID3v2 TRCK/TPOS "n/total"
        ("01 - 新宿.mp3", "山田太郎", 1, 2, 2, 2, False),
        ("ABCD.m4a", "Björk", 1, 5, None, None, True),  # MP4 trkn + cpil
        ("EFGH.wav", "Sigur Rós", 2, 5, None, None, True),  # ID3 chunk in WAV, TCMP
        ("IJKL.aiff", "山田太郎", 3, 5, None, None, True),  # ID3 chunk in AIFF, TCMP
        ("MNOP.flac", "Björk; Sigur Rós", 4, 5, None, None, True),  # two values, COMPILATION=1
        ("bjork - human behaviour.mp3", "Björk", 1, None, None, None, False),  # ID3v1 only
    ],
)
def test_format_specific_fields(
    library: DemoLibrary,
    name: str,
    artist: str,
    track: int,
    tracktotal: int | None,
    disc: int | None,
    disctotal: int | None,
    compilation: bool,
) -> None:
    tags = read_tags(str(_by_name(library, name).path))
    assert (tags.artist, tags.track, tags.tracktotal, tags.disc, tags.disctotal, tags.compilation) == (
        artist,
        track,
        tracktotal,
        disc,
        disctotal,
        compilation,
    )


def test_id3v1_only_file_reads_latin1_fields_and_genre(library: DemoLibrary) -> None:
    tags = read_tags(str(_by_name(library, "bjork - human behaviour.mp3").path))
    assert (tags.album, tags.title, tags.year, tags.genre) == ("Debut", "Human Behaviour", 1993, "Pop")


def test_untagged_file_gives_only_a_duration(library: DemoLibrary) -> None:
    tags = read_tags(str(_by_name(library, "untagged.flac").path))
    assert tags == TagSet(duration=tags.duration)
    assert tags.duration == pytest.approx(SECONDS, abs=0.01)


def test_title_only_file(library: DemoLibrary) -> None:
    tags = read_tags(str(_by_name(library, "only title.ogg").path))
    assert dataclasses.replace(tags, duration=None) == TagSet(title="Only A Title")


def test_album_without_date_has_no_year(library: DemoLibrary) -> None:
    tags = read_tags(str(_by_name(library, "untitled 1.opus").path))
    assert (tags.album, tags.date, tags.year) == ("Untitled Demos", None, None)


def test_non_utf8_name_reads_as_bytes_and_as_surrogate_str(library: DemoLibrary) -> None:
    track = _by_name(library, os.fsdecode(b"caf\xe9.flac"))
    raw = os.fsencode(track.path)
    assert raw.endswith(b"/caf\xe9.flac")
    assert read_tags(raw).title == "Café"
    assert read_tags(str(track.path)).album == "Café Sessions"


def test_corrupt_file_raises_tag_read_error(library: DemoLibrary) -> None:
    (corrupt,) = [track for track in library.tracks if track.corrupt]
    with pytest.raises(TagReadError, match="sync"):
        read_tags(str(corrupt.path))


def test_files_that_are_not_audio_raise_tag_read_error(library: DemoLibrary, tmp_path: Path) -> None:
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    for path in (library.others[0], library.covers[0], empty, tmp_path / "missing.mp3", tmp_path):
        with pytest.raises(TagReadError):
            read_tags(str(path))


def test_vorbis_number_forms_and_alternative_keys(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, "untagged.flac", tmp_path)
    _retag_vorbis(
        path,
        TRACKNUMBER="3/12",
        DISCNUMBER="02",
        TOTALDISCS="3",
        ALBUM_ARTIST="The Band",
        DATE="May 2001",
        COMPILATION="1",
    )
    tags = read_tags(str(path))
    assert (tags.track, tags.tracktotal, tags.disc, tags.disctotal) == (3, 12, 2, 3)
    assert (tags.albumartist, tags.date, tags.year, tags.compilation) == ("The Band", "May 2001", 2001, True)


def test_junk_numbers_and_false_compilation(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, "untagged.flac", tmp_path)
    _retag_vorbis(path, TRACKNUMBER="A1", DISCNUMBER="one", DATE="unknown", COMPILATION="0")
    tags = read_tags(str(path))
    assert (tags.track, tags.disc, tags.date, tags.year) == (None, None, "unknown", None)
    assert tags.compilation is False


def test_strings_are_stripped_joined_and_emptied(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, "untagged.flac", tmp_path)
    _retag_vorbis(path, ARTIST=["  A  ", "B\x00", "A", " "], ALBUM="   ", TITLE="\x00", GENRE=" Rock\n")
    tags = read_tags(str(path))
    assert (tags.artist, tags.album, tags.title, tags.genre) == ("A; B", None, None, "Rock")


def test_id3_number_forms_and_txxx_album_artist(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, "bjork - human behaviour.mp3", tmp_path)
    id3: Any = mutagen.id3  # mutagen is untyped
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text="Three"))
    tags.add(id3.TRCK(encoding=3, text="3/12"))
    tags.add(id3.TPOS(encoding=3, text="1/2"))
    tags.add(id3.TXXX(encoding=3, desc="ALBUM ARTIST", text="Somebody"))
    tags.save(path)
    read = read_tags(str(path))
    assert (read.title, read.track, read.tracktotal, read.disc, read.disctotal) == ("Three", 3, 12, 1, 2)
    assert read.albumartist == "Somebody"


def test_mp4_number_pairs_and_compilation_off(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, "ABCD.m4a", tmp_path)
    audio: Any = mutagen.File(path)
    audio.tags["trkn"] = [(3, 12)]
    audio.tags["disk"] = [(2, 0)]
    audio.tags["cpil"] = False
    audio.save()
    tags = read_tags(str(path))
    assert (tags.track, tags.tracktotal, tags.disc, tags.disctotal) == (3, 12, 2, None)
    assert tags.compilation is False


def test_wavpack_with_apev2_tags(tmp_path: Path) -> None:
    path = tmp_path / "tiny.wv"  # a bare WavPack block header: 16000 samples at 16 kHz, no audio data
    path.write_bytes(b"wvpk" + struct.pack("<IHBBIIIII", 24, 0x410, 0, 0, 16000, 0, 16000, (5 << 23) | 1, 0))
    apev2: Any = mutagen.apev2  # mutagen is untyped
    tags = apev2.APEv2()
    tags["Artist"] = ["A", "B"]
    tags["Album Artist"] = "AA"
    tags["Track"] = "3/12"
    tags["Year"] = "2001"
    tags["Compilation"] = "1"
    tags["Cover Art (Front)"] = apev2.APEValue(b"front.jpg\x00\xff\xd8", apev2.BINARY)
    tags.save(path)
    read = read_tags(str(path))
    assert read == TagSet(
        artist="A; B",
        albumartist="AA",
        date="2001",
        year=2001,
        track=3,
        tracktotal=12,
        compilation=True,
        duration=1.0,
    )


def test_asf_attributes_are_flattened() -> None:
    asf: Any = mutagen.asf  # no WMA encoder at hand: check the tag mapping on an ASFTags object
    tags = asf.ASFTags()
    tags["Author"] = [asf.ASFUnicodeAttribute("X")]
    tags["WM/AlbumArtist"] = "Y"
    tags["WM/TrackNumber"] = [asf.ASFDWordAttribute(4)]
    tags["WM/IsCompilation"] = [asf.ASFBoolAttribute(True)]
    tags["WM/Year"] = "1999"
    assert _tagset(_flatten(tags), None) == TagSet(
        artist="X", albumartist="Y", date="1999", year=1999, track=4, compilation=True
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (3, None)),
        ("03", (3, None)),
        ("3/12", (3, 12)),
        (" 03 / 012 ", (3, 12)),
        ("3/", (3, None)),
        ("0", (None, None)),
        ("junk", (None, None)),
        ("A1", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_number(text: str | None, expected: tuple[int | None, int | None]) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("date", "year"),
    [
        ("2001-05-03", 2001),
        ("2001", 2001),
        ("May 2001", 2001),
        ("1997-09-22T10:00:00", 1997),
        ("20010503", 2001),
        ("03/05/1999", 1999),
        ("junk", None),
        ("0999", None),
        ("3001", None),
        ("12345", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_year(date: str | None, year: int | None) -> None:
    assert parse_year(date) == year


def test_cover_names_and_audio_extensions() -> None:
    assert is_cover_name("Folder.JPG") and is_cover_name("cover.png") and is_cover_name("AlbumArt.jpeg")
    assert not is_cover_name("cover.gif") and not is_cover_name("back.jpg")
    assert all(name == name.lower() for name in COVER_NAMES)
    assert {"flac", "mp3", "ogg", "opus", "m4a", "wav", "aiff", "wv", "ape", "wma", "dsf"} <= AUDIO_EXTENSIONS
    assert all(ext == ext.lower() and not ext.startswith(".") for ext in AUDIO_EXTENSIONS)


def _read_outcome(path: Path) -> str:
    """Read the file; any exception other than TagReadError propagates and fails the test."""
    try:
        read_tags(str(path))
    except TagReadError:
        return "error"
    return "tags"


_EXTENSIONS = sorted(AUDIO_EXTENSIONS)
_FUZZ_SETTINGS = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_MAGICS = [
    b"",
    b"fLaC",
    b"ID3\x04\x00\x00",
    b"OggS\x00\x02",
    b"RIFF\x00\x01\x00\x00WAVE",
    b"FORM\x00\x01\x00\x00AIFF",
    b"\x00\x00\x00\x18ftypM4A ",
    b"MAC ",
    b"wvpk",
    b"\xff\xfb\x90\x64",
]


@_FUZZ_SETTINGS
@given(magic=st.sampled_from(_MAGICS), data=st.binary(max_size=2048), ext=st.sampled_from(_EXTENSIONS))
def test_random_bytes_give_tags_or_tag_read_error(
    tmp_path: Path, magic: bytes, data: bytes, ext: str
) -> None:
    path = tmp_path / f"random.{ext}"
    path.write_bytes(magic + data)
    assert _read_outcome(path) in ("tags", "error")


@_FUZZ_SETTINGS
@given(
    index=st.integers(min_value=0),
    cut=st.floats(min_value=0.0, max_value=1.0),
    flips=st.lists(st.tuples(st.floats(min_value=0.0, max_value=0.999), st.integers(0, 255)), max_size=8),
)
def test_damaged_real_files_give_tags_or_tag_read_error(
    library: DemoLibrary, tmp_path: Path, index: int, cut: float, flips: list[tuple[float, int]]
) -> None:
    good = [track for track in library.tracks if not track.corrupt]
    source = good[index % len(good)].path
    data = bytearray(source.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    path = tmp_path / f"damaged{source.suffix}"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    assert _read_outcome(path) in ("tags", "error")


MB_ALBUM = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"


@pytest.mark.parametrize("name", ["01 hunter.flac", "track1.ogg", "01 - 夜明け.mp3", "ABCD.m4a"])
def test_the_musicbrainz_album_id_is_read_as_picard_writes_it(
    library: DemoLibrary, tmp_path: Path, name: str
) -> None:
    """Issue 13.1: the release id tells two albums of one name apart; each format names it its own way."""
    path = _copy(library, name, tmp_path)
    audio: Any = mutagen.File(path)
    if name.endswith(".mp3"):
        audio.tags.add(mutagen.id3.TXXX(encoding=3, desc="MusicBrainz Album Id", text=[MB_ALBUM]))
    elif name.endswith(".m4a"):
        audio.tags["----:com.apple.iTunes:MusicBrainz Album Id"] = [MB_ALBUM.encode()]
    else:
        audio.tags["MUSICBRAINZ_ALBUMID"] = MB_ALBUM
    audio.save()
    assert read_tags(path).mb_albumid == MB_ALBUM
    assert read_tags(_by_name(library, name).path).mb_albumid is None


def test_musicbrainz_ids_in_apev2_and_asf_are_read() -> None:
    asf: Any = mutagen.asf
    tags = asf.ASFTags()
    tags["MusicBrainz/Album Id"] = MB_ALBUM
    assert _tagset(_flatten(tags), None).mb_albumid == MB_ALBUM
    assert _tagset({"musicbrainz_albumid": [MB_ALBUM.upper()]}, None).mb_albumid == MB_ALBUM
