"""The demo library's catalogue: every track, cover and other file it holds, and what its tags say.

Owns: `DemoTrack` and `DemoLibrary` (what was generated, with the tags each track should read back
as), `Spec` and `SPECS` (the tracks to write: path, format, tags as written, the edge case each one
is), the cover and notes paths, a minimal valid JPEG, and `expected` (a spec as the DemoTrack a
reader must find).
Concurrency: constants and pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicfs.core.types import TagSet


@dataclass(frozen=True, slots=True)
class DemoTrack:
    """One generated audio file and the tags it was given (what `read_tags` should find).

    Attributes:
        path: absolute path; for a name that is not UTF-8 it holds surrogate escapes
            (``os.fsencode(path)`` gives the real bytes).
        note: which edge case this track is, empty for an ordinary one.
        corrupt: the file is random bytes, not audio; its tag fields are all None.
    """

    path: Path
    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    title: str | None = None
    genre: str | None = None
    date: str | None = None
    year: int | None = None
    track: int | None = None
    tracktotal: int | None = None
    disc: int | None = None
    disctotal: int | None = None
    compilation: bool = False
    corrupt: bool = False
    note: str = ""

    def expected_tags(self) -> TagSet:
        """The `TagSet` that reading this file should give, ignoring ``duration``."""
        return TagSet(
            artist=self.artist,
            albumartist=self.albumartist,
            album=self.album,
            title=self.title,
            genre=self.genre,
            date=self.date,
            year=self.year,
            track=self.track,
            tracktotal=self.tracktotal,
            disc=self.disc,
            disctotal=self.disctotal,
            compilation=self.compilation,
        )


@dataclass(frozen=True, slots=True)
class DemoLibrary:
    """What was generated: the root folder, every audio file, the cover images and ignorable files."""

    root: Path
    tracks: tuple[DemoTrack, ...]
    covers: tuple[Path, ...] = ()
    others: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A track to generate: where, which format, the tags as written (format-neutral keys)."""

    rel: str | bytes
    fmt: str
    written: dict[str, Any] = field(default_factory=dict)
    year: int | None = None
    note: str = ""


_HOMOGENIC = {
    "artist": "Björk",
    "albumartist": "Björk",
    "album": "Homogenic",
    "date": "1997-09-22",
    "genre": "Electronic",
}


_AGAETIS = {"artist": "Sigur Rós", "album": "Ágætis byrjun", "date": "1999", "genre": "Post-Rock"}


_DEMOS = {"artist": "Sigur Rós", "album": "Untitled Demos", "genre": "Post-Rock"}


_TOKYO = {"artist": "山田太郎", "album": "東京の夜", "date": "2005-05-03", "genre": "J-Pop"}


_SUMMER = {"album": "Summer Hits 2010", "date": "2010-06", "genre": "Pop", "compilation": True}


SPECS: tuple[Spec, ...] = (
    Spec(
        "Downloads/Björk - Homogenic [FLAC]/01 hunter.flac",
        "flac",
        {**_HOMOGENIC, "title": "Hunter", "tracknumber": "1/3"},
        1997,
        "number/total form",
    ),
    Spec(
        "Downloads/Björk - Homogenic [FLAC]/02 - joga.flac",
        "flac",
        {**_HOMOGENIC, "title": "Jóga: Live/Remix", "tracknumber": "2/3"},
        1997,
        "title with '/' and ':'",
    ),
    Spec(
        "Downloads/Björk - Homogenic [FLAC]/03.flac",
        "flac",
        {**_HOMOGENIC, "title": "Unravel", "tracknumber": "03", "tracktotal": "3"},
        1997,
        "zero-padded number, TRACKTOTAL key",
    ),
    Spec(
        "Downloads/dupes/01 hunter (1).flac",
        "flac",
        {**_HOMOGENIC, "title": "Hunter", "tracknumber": "1/3"},
        1997,
        "same artist/album/number/title as '01 hunter.flac' but different audio: path collision",
    ),
    Spec(
        "Music/Sigur Rós/Ágætis byrjun/track1.ogg",
        "ogg",
        {
            **_AGAETIS,
            "title": "Svefn-g-englar",
            "tracknumber": "1",
            "totaltracks": "3",
            "discnumber": "1",
            "totaldiscs": "1",
        },
        1999,
        "TOTALTRACKS/TOTALDISCS keys",
    ),
    Spec(
        "Music/Sigur Rós/Ágætis byrjun/track2.ogg",
        "ogg",
        {
            **_AGAETIS,
            "title": "Starálfur",
            "tracknumber": "2",
            "tracktotal": "3",
            "discnumber": "1",
            "disctotal": "1",
        },
        1999,
    ),
    Spec(
        "Music/Sigur Rós/Ágætis byrjun/track3.ogg",
        "ogg",
        {**_AGAETIS, "title": "Viðrar vel til loftárása", "tracknumber": "3", "tracktotal": "3"},
        1999,
    ),
    Spec(
        "Music/Sigur Rós/demos/untitled 1.opus",
        "opus",
        {**_DEMOS, "title": "Untitled #1", "tracknumber": "1"},
        None,
        "album without a date",
    ),
    Spec(
        "Music/Sigur Rós/demos/untitled 2.opus",
        "opus",
        {**_DEMOS, "title": "Untitled #2", "tracknumber": "2"},
        None,
        "album without a date",
    ),
    Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD1/01 - 夜明け.mp3",
        "mp3",
        {**_TOKYO, "title": "夜明け", "tracknumber": "1/2", "discnumber": "1/2"},
        2005,
        "multi-disc",
    ),
    Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD1/02 - 渋谷.mp3",
        "mp3",
        {**_TOKYO, "title": "渋谷", "tracknumber": "2/2", "discnumber": "1/2"},
        2005,
        "multi-disc",
    ),
    Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD2/01 - 新宿.mp3",
        "mp3",
        {**_TOKYO, "title": "新宿", "tracknumber": "1/2", "discnumber": "2/2"},
        2005,
        "multi-disc",
    ),
    Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD2/02 - 東京タワー.mp3",
        "mp3",
        {**_TOKYO, "title": "東京タワー", "tracknumber": "2/2", "discnumber": "2/2"},
        2005,
        "multi-disc",
    ),
    Spec(
        "old_ipod/iPod_Control/Music/F01/ABCD.m4a",
        "m4a",
        {
            **_SUMMER,
            "artist": "Björk",
            "albumartist": "Various Artists",
            "title": "Summer Song",
            "tracknumber": "1/5",
        },
        2010,
        "compilation (MP4 cpil), Apple Lossless in M4A",
    ),
    Spec(
        "old_ipod/iPod_Control/Music/F01/EFGH.wav",
        "wav",
        {**_SUMMER, "artist": "Sigur Rós", "title": "Sumar", "tracknumber": "2/5"},
        2010,
        "compilation (ID3 TCMP in WAV) without albumartist",
    ),
    Spec(
        "old_ipod/iPod_Control/Music/F02/IJKL.aiff",
        "aiff",
        {**_SUMMER, "artist": "山田太郎", "title": "夏の歌", "tracknumber": "3/5"},
        2010,
        "compilation (ID3 TCMP in AIFF) without albumartist",
    ),
    Spec(
        "old_ipod/iPod_Control/Music/F02/MNOP.flac",
        "flac",
        {
            **_SUMMER,
            "artist": ["Björk", "Sigur Rós"],
            "title": "Duet",
            "tracknumber": "4",
            "totaltracks": "5",
        },
        2010,
        "compilation (Vorbis COMPILATION=1), two artist values",
    ),
    Spec(
        "old_ipod/iPod_Control/Music/F03/QRST.mp3",
        "mp3",
        {
            **_SUMMER,
            "artist": "DJ Example",
            "albumartist": "Various Artists",
            "title": "Mix",
            "tracknumber": "5/5",
        },
        2010,
        "compilation (ID3 TCMP)",
    ),
    Spec("Downloads/misc/untagged.flac", "flac", {}, None, "no tags at all"),
    Spec("Downloads/misc/only title.ogg", "ogg", {"title": "Only A Title"}, None, "only a title"),
    Spec("Downloads/misc/corrupt.mp3", "corrupt", {}, None, "random bytes, not audio"),
    Spec(
        b"Downloads/misc/caf\xe9.flac",
        "flac",
        {"artist": "山田太郎", "album": "Café Sessions", "title": "Café", "tracknumber": "1", "date": "2012"},
        2012,
        "file name is Latin-1, not valid UTF-8",
    ),
    Spec(
        "old_stuff/winamp/bjork - human behaviour.mp3",
        "id3v1",
        {
            "artist": "Björk",
            "album": "Debut",
            "title": "Human Behaviour",
            "tracknumber": "1",
            "date": "1993",
            "genre": "Pop",
        },
        1993,
        "ID3v1 tag only",
    ),
)


COVER_PNG = "Downloads/Björk - Homogenic [FLAC]/cover.png"


COVER_JPG = "Music/Sigur Rós/Ágætis byrjun/folder.jpg"


NOTES = "Downloads/Björk - Homogenic [FLAC]/notes.txt"


# A valid 8x8 grey baseline JPEG: JFIF, one quantisation table, one component, two one-code
# Huffman tables, and one block whose only coefficient is DC = 72 (all pixels 200).
JPEG = (
    b"\xff\xd8"
    + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xdb\x00\x43\x00"
    + b"\x08" * 64
    + b"\xff\xc0\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00"
    + b"\xff\xc4\x00\x14\x00\x01"
    + b"\x00" * 15
    + b"\x07"
    + b"\xff\xc4\x00\x14\x10\x01"
    + b"\x00" * 15
    + b"\x00"
    + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    + b"\x48\x7f"
    + b"\xff\xd9"
)


def expected(path: Path, spec: Spec) -> DemoTrack:
    """The tags that `spec` should read back as, derived from what was written."""
    tags = spec.written

    def number(key: str, total_keys: tuple[str, ...]) -> tuple[int | None, int | None]:
        raw = tags.get(key)
        if raw is None:
            return None, None
        number, _, total = raw.partition("/")
        total = total or next((tags[k] for k in total_keys if k in tags), "")
        return int(number), int(total) if total else None

    track, tracktotal = number("tracknumber", ("tracktotal", "totaltracks"))
    disc, disctotal = number("discnumber", ("disctotal", "totaldiscs"))
    artist = tags.get("artist")
    return DemoTrack(
        path=path,
        artist="; ".join(artist) if isinstance(artist, list) else artist,
        albumartist=tags.get("albumartist"),
        album=tags.get("album"),
        title=tags.get("title"),
        genre=tags.get("genre"),
        date=tags.get("date"),
        year=spec.year,
        track=track,
        tracktotal=tracktotal,
        disc=disc,
        disctotal=disctotal,
        compilation=bool(tags.get("compilation")),
        corrupt=spec.fmt == "corrupt",
        note=spec.note,
    )
