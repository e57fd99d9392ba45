"""Where a track's embedded front cover lies in its file (musicfs.tags.pictures), on real files of
every generated format with pictures the test embeds itself: the range must hold exactly those bytes."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import mutagen
import mutagen.flac
import mutagen.id3
import mutagen.mp4
import pytest

from musicfs.core.types import EmbeddedPicture
from musicfs.demo import DemoLibrary, generate_library
from musicfs.tags import read_tags, read_track
from musicfs.tags.pictures import decoded_front_cover

JPEG = b"\xff\xd8\xff\xe0" + b"the front" + os.urandom(3000)
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> DemoLibrary:
    return generate_library(tmp_path_factory.mktemp("library"), seconds=0.5)


def _copy(library: DemoLibrary, suffix: str, dest: Path) -> Path:
    source = next(t.path for t in library.tracks if t.path.suffix == suffix and "misc" not in t.path.parts)
    target = dest / f"track{suffix}"
    shutil.copyfile(source, target)
    return target


def _picture(path: Path) -> EmbeddedPicture | None:
    with path.open("rb") as stream:
        return read_track(stream).picture


def _bytes_at(path: Path, picture: EmbeddedPicture) -> bytes:
    with path.open("rb") as stream:
        stream.seek(picture.offset)
        return stream.read(picture.size)


def _flac_picture(data: bytes, kind: int, mime: str = "image/jpeg") -> mutagen.flac.Picture:
    picture = mutagen.flac.Picture()
    picture.type, picture.mime, picture.desc, picture.data = kind, mime, "a description", data
    return picture


def test_a_flac_front_cover_is_found_among_other_pictures(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, ".flac", tmp_path)
    audio: Any = mutagen.flac.FLAC(path)
    audio.add_picture(_flac_picture(PNG, 4, "image/png"))  # the back cover, first
    audio.add_picture(_flac_picture(JPEG, 3))
    audio.save()
    picture = _picture(path)
    assert picture is not None and picture.ext == "jpg"
    assert _bytes_at(path, picture) == JPEG
    with path.open("rb") as stream:
        assert read_track(stream).tags == read_tags(path)  # the same tags as before


def test_a_picture_of_type_other_is_taken_but_not_a_band_photo(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, ".flac", tmp_path)
    audio: Any = mutagen.flac.FLAC(path)
    audio.add_picture(_flac_picture(PNG, 0, "image/png"))
    audio.save()
    picture = _picture(path)
    assert picture is not None and picture.ext == "png" and _bytes_at(path, picture) == PNG
    audio = mutagen.flac.FLAC(path)
    audio.clear_pictures()
    audio.add_picture(_flac_picture(JPEG, 8))  # "artist/performer"
    audio.save()
    assert _picture(path) is None


@pytest.mark.parametrize("version", [3, 4])
def test_an_id3_apic_front_cover_is_found(library: DemoLibrary, tmp_path: Path, version: int) -> None:
    path = _copy(library, ".mp3", tmp_path)
    tags: Any = mutagen.id3.ID3(path)
    tags.add(mutagen.id3.APIC(encoding=3, mime="image/png", type=3, desc="front", data=PNG))
    tags.save(v2_version=version)
    picture = _picture(path)
    assert picture is not None and picture.ext == "png"
    assert _bytes_at(path, picture) == PNG


def test_an_mp4_covr_is_found(library: DemoLibrary, tmp_path: Path) -> None:
    path = _copy(library, ".m4a", tmp_path)
    audio: Any = mutagen.mp4.MP4(path)
    audio["covr"] = [mutagen.mp4.MP4Cover(JPEG, imageformat=mutagen.mp4.MP4Cover.FORMAT_JPEG)]
    audio.save()
    picture = _picture(path)
    assert picture is not None and picture.ext == "jpg"
    assert _bytes_at(path, picture) == JPEG


def _embed_vorbis(path: Path, *pictures: mutagen.flac.Picture) -> None:
    audio: Any = mutagen.File(path)
    audio["metadata_block_picture"] = [base64.b64encode(p.write()).decode() for p in pictures]
    audio.save()


@pytest.mark.parametrize("suffix", [".ogg", ".opus"])
def test_a_vorbis_comment_picture_is_offered_encoded_and_decoded_exactly(
    library: DemoLibrary, tmp_path: Path, suffix: str
) -> None:
    """METADATA_BLOCK_PICTURE is base64 spread over Ogg pages: no byte range holds it, so the scan
    records its size and kind only, and `decoded_front_cover` gives the very bytes at open."""
    path = _copy(library, suffix, tmp_path)
    big = b"\xff\xd8\xff\xe0" + os.urandom(200_000)  # several Ogg pages of comment packet
    _embed_vorbis(path, _flac_picture(PNG, 4, "image/png"), _flac_picture(big, 3))
    picture = _picture(path)
    assert picture == EmbeddedPicture(None, len(big), "jpg")
    with path.open("rb") as stream:
        assert decoded_front_cover(stream) == big
    _embed_vorbis(path, _flac_picture(PNG, 0, "image/png"))
    assert _picture(path) == EmbeddedPicture(None, len(PNG), "png")
    with path.open("rb") as stream:
        assert decoded_front_cover(stream) == PNG


def test_no_cover_from_a_picture_players_do_not_take_or_a_damaged_comment(
    library: DemoLibrary, tmp_path: Path
) -> None:
    flac = _copy(library, ".flac", tmp_path)
    audio = mutagen.flac.FLAC(flac)
    audio.add_picture(_flac_picture(b"GIF89a" + os.urandom(100), 3, "image/gif"))
    audio.save()
    assert _picture(flac) is None
    ogg = _copy(library, ".ogg", tmp_path)
    _embed_vorbis(ogg, _flac_picture(b"GIF89a" + os.urandom(100), 3, "image/gif"))
    assert _picture(ogg) is None
    tags: Any = mutagen.File(ogg)
    tags["metadata_block_picture"] = ["not base64 at all!"]
    tags.save()
    assert _picture(ogg) is None
    assert read_tags(ogg).title is not None  # the tags are still read
    with ogg.open("rb") as stream:
        assert decoded_front_cover(stream) is None


def test_a_track_without_pictures_has_none(library: DemoLibrary, tmp_path: Path) -> None:
    for suffix in (".flac", ".mp3", ".m4a", ".ogg", ".opus", ".wav", ".aiff"):
        assert _picture(_copy(library, suffix, tmp_path)) is None, suffix


@pytest.mark.parametrize("size", [4, 100, 255, 256, 257, 511, 512, 513])
def test_pictures_smaller_than_the_probe_or_near_it_are_found_exactly(
    library: DemoLibrary, tmp_path: Path, size: int
) -> None:
    data = (JPEG * 2)[:size]
    flac = _copy(library, ".flac", tmp_path)
    audio: Any = mutagen.flac.FLAC(flac)
    audio.add_picture(_flac_picture(data, 3))
    audio.save()
    mp3 = _copy(library, ".mp3", tmp_path)
    tags: Any = mutagen.id3.ID3(mp3)
    tags.add(mutagen.id3.APIC(encoding=3, mime="image/jpeg", type=3, desc="", data=data))
    tags.save()
    for path in (flac, mp3):
        picture = _picture(path)
        assert picture is not None and picture.size == size and _bytes_at(path, picture) == data, path
