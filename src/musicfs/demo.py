"""Generating a small but real music library, for the README quick-start, test fixtures and benchmarks.

Owns: `generate_library` (about twenty short tagged tones in messy folders, full of edge cases),
`generate_bulk` (thousands of tagged FLAC copies for benchmarks) and the ``python -m musicfs.demo``
command. The audio is real (sine chords encoded by libsndfile through soundfile); the tags are
written by mutagen. numpy and soundfile come with the ``demo`` extra and are imported lazily.

Concurrency: plain blocking functions that only write below the folder they are given; safe to run
in several threads on different folders.

Output is deterministic: the same seed gives the same names, tags and bytes (Ogg stream serial
numbers, random in libsndfile, are rewritten to a fixed value).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import VCFLACDict
from mutagen.id3 import TALB, TCMP, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK
from mutagen.ogg import OggPage

from musicfs.core.types import TagSet

__all__ = ["DemoLibrary", "DemoTrack", "generate_bulk", "generate_library", "main"]

RATE = 16000
_ALAC_FRAME = 4096
_OGG_SERIAL = 0x4D465321
# mutagen's classes are untyped; calling them through Any keeps mypy --strict quiet.
_OGG_PAGE: Any = OggPage
_VC_FLAC_DICT: Any = VCFLACDict


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
class _Spec:
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

_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "Downloads/Björk - Homogenic [FLAC]/01 hunter.flac",
        "flac",
        {**_HOMOGENIC, "title": "Hunter", "tracknumber": "1/3"},
        1997,
        "number/total form",
    ),
    _Spec(
        "Downloads/Björk - Homogenic [FLAC]/02 - joga.flac",
        "flac",
        {**_HOMOGENIC, "title": "Jóga: Live/Remix", "tracknumber": "2/3"},
        1997,
        "title with '/' and ':'",
    ),
    _Spec(
        "Downloads/Björk - Homogenic [FLAC]/03.flac",
        "flac",
        {**_HOMOGENIC, "title": "Unravel", "tracknumber": "03", "tracktotal": "3"},
        1997,
        "zero-padded number, TRACKTOTAL key",
    ),
    _Spec(
        "Downloads/dupes/01 hunter (1).flac",
        "flac",
        {**_HOMOGENIC, "title": "Hunter", "tracknumber": "1/3"},
        1997,
        "same artist/album/number/title as '01 hunter.flac' but different audio: path collision",
    ),
    _Spec(
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
    _Spec(
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
    _Spec(
        "Music/Sigur Rós/Ágætis byrjun/track3.ogg",
        "ogg",
        {**_AGAETIS, "title": "Viðrar vel til loftárása", "tracknumber": "3", "tracktotal": "3"},
        1999,
    ),
    _Spec(
        "Music/Sigur Rós/demos/untitled 1.opus",
        "opus",
        {**_DEMOS, "title": "Untitled #1", "tracknumber": "1"},
        None,
        "album without a date",
    ),
    _Spec(
        "Music/Sigur Rós/demos/untitled 2.opus",
        "opus",
        {**_DEMOS, "title": "Untitled #2", "tracknumber": "2"},
        None,
        "album without a date",
    ),
    _Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD1/01 - 夜明け.mp3",
        "mp3",
        {**_TOKYO, "title": "夜明け", "tracknumber": "1/2", "discnumber": "1/2"},
        2005,
        "multi-disc",
    ),
    _Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD1/02 - 渋谷.mp3",
        "mp3",
        {**_TOKYO, "title": "渋谷", "tracknumber": "2/2", "discnumber": "1/2"},
        2005,
        "multi-disc",
    ),
    _Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD2/01 - 新宿.mp3",
        "mp3",
        {**_TOKYO, "title": "新宿", "tracknumber": "1/2", "discnumber": "2/2"},
        2005,
        "multi-disc",
    ),
    _Spec(
        "CD Rips/山田太郎 - 東京の夜 (2CD)/CD2/02 - 東京タワー.mp3",
        "mp3",
        {**_TOKYO, "title": "東京タワー", "tracknumber": "2/2", "discnumber": "2/2"},
        2005,
        "multi-disc",
    ),
    _Spec(
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
    _Spec(
        "old_ipod/iPod_Control/Music/F01/EFGH.wav",
        "wav",
        {**_SUMMER, "artist": "Sigur Rós", "title": "Sumar", "tracknumber": "2/5"},
        2010,
        "compilation (ID3 TCMP in WAV) without albumartist",
    ),
    _Spec(
        "old_ipod/iPod_Control/Music/F02/IJKL.aiff",
        "aiff",
        {**_SUMMER, "artist": "山田太郎", "title": "夏の歌", "tracknumber": "3/5"},
        2010,
        "compilation (ID3 TCMP in AIFF) without albumartist",
    ),
    _Spec(
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
    _Spec(
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
    _Spec("Downloads/misc/untagged.flac", "flac", {}, None, "no tags at all"),
    _Spec("Downloads/misc/only title.ogg", "ogg", {"title": "Only A Title"}, None, "only a title"),
    _Spec("Downloads/misc/corrupt.mp3", "corrupt", {}, None, "random bytes, not audio"),
    _Spec(
        b"Downloads/misc/caf\xe9.flac",
        "flac",
        {"artist": "山田太郎", "album": "Café Sessions", "title": "Café", "tracknumber": "1", "date": "2012"},
        2012,
        "file name is Latin-1, not valid UTF-8",
    ),
    _Spec(
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

_COVER_PNG = "Downloads/Björk - Homogenic [FLAC]/cover.png"
_COVER_JPG = "Music/Sigur Rós/Ágætis byrjun/folder.jpg"
_NOTES = "Downloads/Björk - Homogenic [FLAC]/notes.txt"

# A valid 8x8 grey baseline JPEG: JFIF, one quantisation table, one component, two one-code
# Huffman tables, and one block whose only coefficient is DC = 72 (all pixels 200).
_JPEG = (
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


def generate_library(dest: Path, *, seed: int = 0, seconds: float = 1.0) -> DemoLibrary:
    """Write the demo library below `dest` (created if needed; files of the same names are replaced).

    Args:
        dest: the folder to fill; the paths returned are absolute.
        seed: changes the tones and the corrupt file's bytes; names and tags never change.
        seconds: length of each tone.

    Returns:
        What was written, with the tags each track should read back as.

    Raises:
        RuntimeError: numpy or soundfile is not installed.
    """
    np, sf = _audio_modules()
    dest = dest.absolute()
    tracks = []
    for index, spec in enumerate(_SPECS):
        path = _path(dest, spec.rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec.fmt == "corrupt":
            rng = random.Random(f"{seed}-corrupt")
            path.write_bytes(bytes(rng.randrange(0xFF) for _ in range(4096)))  # no 0xFF: no MPEG sync
        else:
            samples = _tone(np, seed, index, seconds)
            _write_audio(np, sf, path, spec.fmt, samples)
            _write_tags(path, spec.fmt, spec.written)
        tracks.append(_expected(path, spec))
    covers = (_path(dest, _COVER_PNG), _path(dest, _COVER_JPG))
    covers[0].write_bytes(_png(32, 32, seed))
    covers[1].write_bytes(_JPEG)
    notes = _path(dest, _NOTES)
    notes.write_text("Ripped from my own CDs. Not audio: MusicFS must ignore this file.\n", encoding="utf-8")
    return DemoLibrary(root=dest, tracks=tuple(tracks), covers=covers, others=(notes,))


def generate_bulk(
    dest: Path,
    count: int,
    *,
    seed: int = 0,
    template_file: Path | None = None,
    tracks_per_album: int = 10,
    albums_per_artist: int = 10,
    seconds: float = 0.25,
) -> DemoLibrary:
    """Write `count` small tagged FLAC files fast, for benchmarks.

    One real FLAC is encoded per template (or `template_file` is used, which needs neither numpy nor
    soundfile); every track is that file's audio with a freshly serialised Vorbis comment block.

    Args:
        dest: the folder to fill (``dest/artistNNN/albumNN/NN.flac``).
        count: how many tracks.
        seed: changes the years and genres (and the generated tones).
        template_file: a FLAC file whose audio every track reuses.
        tracks_per_album: tracks in each album.
        albums_per_artist: albums of each artist.
        seconds: length of the generated template tone.

    Returns:
        The tracks written, with their tags.
    """
    dest = dest.absolute()
    if template_file is not None:
        templates = [_split_flac(template_file.read_bytes())]
    else:
        np, sf = _audio_modules()
        templates = [_split_flac(_encode(sf, _tone(np, seed, n, seconds), "flac")) for n in range(4)]
    rng = random.Random(seed)
    genres = ("Rock", "Jazz", "Electronic", "Folk", "Classical", "Hip-Hop")
    per_artist = tracks_per_album * albums_per_artist
    tracks = []
    album_tags: dict[str, str] = {}
    for number in range(count):
        artist_no, rest = divmod(number, per_artist)
        album_no, track_no = divmod(rest, tracks_per_album)
        if track_no == 0:
            album_tags = {"date": str(rng.randrange(1950, 2025)), "genre": rng.choice(genres)}
        artist = f"Bulk Artist {artist_no:03d}"
        track = DemoTrack(
            path=dest / f"artist{artist_no:03d}" / f"album{album_no:02d}" / f"{track_no + 1:02d}.flac",
            artist=artist,
            albumartist=artist,
            album=f"Bulk Album {artist_no:03d}-{album_no:02d}",
            title=f"Song {number:05d}",
            genre=album_tags["genre"],
            date=album_tags["date"],
            year=int(album_tags["date"]),
            track=track_no + 1,
            tracktotal=tracks_per_album,
        )
        streaminfo, frames = templates[(artist_no * albums_per_artist + album_no) % len(templates)]
        track.path.parent.mkdir(parents=True, exist_ok=True)
        track.path.write_bytes(b"fLaC" + streaminfo + _vorbis_block(track) + frames)
        tracks.append(track)
    return DemoLibrary(root=dest, tracks=tuple(tracks))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m musicfs.demo DEST [--seed N] [--bulk COUNT]``: write a library, print where and how big."""
    parser = argparse.ArgumentParser(prog="python -m musicfs.demo", description="Write a demo music library.")
    parser.add_argument("dest", type=Path, help="folder to write the library into")
    parser.add_argument("--seed", type=int, default=0, help="changes the audio, not the names (default 0)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each tone (default 1)")
    parser.add_argument("--bulk", type=int, metavar="COUNT", help="write COUNT benchmark tracks instead")
    args = parser.parse_args(argv)
    try:
        if args.bulk is not None:
            library = generate_bulk(args.dest, args.bulk, seed=args.seed)
        else:
            library = generate_library(args.dest, seed=args.seed, seconds=args.seconds)
    except (RuntimeError, OSError) as exc:
        print(f"musicfs.demo: {exc}", file=sys.stderr)
        return 1
    print(f"{library.root}: {len(library.tracks)} tracks")
    return 0


def _audio_modules() -> tuple[Any, Any]:
    try:
        import numpy
        import soundfile
    except ImportError as exc:
        message = f"the demo library needs numpy and soundfile ({exc}): install musicfs[demo]"
        raise RuntimeError(message) from exc
    return numpy, soundfile


def _path(dest: Path, rel: str | bytes) -> Path:
    return dest / (os.fsdecode(rel) if isinstance(rel, bytes) else rel)


def _tone(np: Any, seed: int, index: int, seconds: float) -> Any:
    """A mono chord of two or three sines with a short fade in and out, as float32 in [-0.5, 0.5]."""
    rng = random.Random(f"{seed}-{index}")
    freqs = rng.sample([220.0, 261.6, 293.7, 329.6, 392.0, 440.0, 523.3, 587.3, 659.3], rng.choice((2, 3)))
    t = np.arange(max(1, int(seconds * RATE))) / RATE
    wave = sum(np.sin(2 * np.pi * freq * t) for freq in freqs) / len(freqs)
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.02, 0.0, 1.0)
    return (0.5 * wave * fade).astype(np.float32)


_SF_FORMATS = {
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "wav": ("WAV", "PCM_16"),
    "aiff": ("AIFF", "PCM_16"),
}


def _encode(sf: Any, samples: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    container, subtype = _SF_FORMATS[fmt]
    sf.write(buffer, samples, RATE, format=container, subtype=subtype)
    return buffer.getvalue()


def _write_audio(np: Any, sf: Any, path: Path, fmt: str, samples: Any) -> None:
    if fmt == "m4a":
        data = _alac_m4a(np, samples)
    elif fmt in ("mp3", "id3v1") and "MP3" not in sf.available_formats():
        data = _silent_mp3(len(samples) / RATE)
    elif fmt in ("mp3", "id3v1"):
        data = _encode(sf, samples, "mp3")
    else:
        data = _encode(sf, samples, fmt)
    path.write_bytes(data)  # soundfile cannot open paths that are not UTF-8, so bytes go through Python


_ID3_FRAMES: dict[str, Any] = {
    "artist": TPE1,
    "albumartist": TPE2,
    "album": TALB,
    "title": TIT2,
    "genre": TCON,
    "date": TDRC,
    "tracknumber": TRCK,
    "discnumber": TPOS,
    "compilation": TCMP,
}
_MP4_KEYS = {
    "artist": "©ART",
    "albumartist": "aART",
    "album": "©alb",
    "title": "©nam",
    "genre": "©gen",
    "date": "©day",
}


def _write_tags(path: Path, fmt: str, written: dict[str, Any]) -> None:
    """Tag a file the way that format's usual taggers do; `written` uses format-neutral keys."""
    texts = {
        key: value if isinstance(value, list) else ["1" if value is True else value]
        for key, value in written.items()
    }
    if fmt == "id3v1":
        with path.open("ab") as file:
            file.write(_id3v1(written))
        return
    audio: Any = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if fmt in ("flac", "ogg", "opus"):
        tags.clear()
        for key, values in texts.items():
            tags[key.upper()] = values
    elif fmt == "m4a":
        for key, values in texts.items():
            if key in _MP4_KEYS:
                tags[_MP4_KEYS[key]] = values
        number, _, total = texts["tracknumber"][0].partition("/")
        tags["trkn"] = [(int(number), int(total or 0))]
        tags["cpil"] = bool(written.get("compilation"))
    else:  # ID3 in MP3, WAV and AIFF
        for key, values in texts.items():
            tags.add(_ID3_FRAMES[key](encoding=3, text=values))
    audio.save()
    if fmt in ("ogg", "opus"):
        _fix_ogg_serial(path)


def _fix_ogg_serial(path: Path) -> None:
    """Replace libsndfile's random Ogg stream serial number so that the bytes are reproducible."""
    pages = []
    with path.open("rb") as file:
        while True:
            try:
                page = _OGG_PAGE(file)
            except EOFError:
                break
            page.serial = _OGG_SERIAL
            pages.append(page)
    path.write_bytes(b"".join(page.write() for page in pages))


def _id3v1(written: dict[str, Any]) -> bytes:
    """A 128-byte ID3v1.1 tag (Latin-1, fixed-width fields, genre 13 is "Pop")."""

    def pad(key: str, width: int) -> bytes:
        return str(written.get(key, "")).encode("latin-1")[:width].ljust(width, b"\x00")

    return (
        b"TAG"
        + pad("title", 30)
        + pad("artist", 30)
        + pad("album", 30)
        + pad("date", 4)
        + pad("comment", 28)
        + b"\x00"
        + bytes([int(written["tracknumber"]), 13])
    )


def _expected(path: Path, spec: _Spec) -> DemoTrack:
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


def _png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG with a diagonal colour gradient."""
    base = random.Random(f"{seed}-png").randrange(256)
    rows = b"".join(
        b"\x00" + bytes(channel for x in range(width) for channel in ((x * 8) % 256, (y * 8) % 256, base))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _atom(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _alac_frames(np: Any, samples: Any) -> list[bytes]:
    """Encode mono 16-bit samples as ALAC frames stored verbatim (the codec's "escape" mode)."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(">i2")
    frames = []
    for start in range(0, len(pcm), _ALAC_FRAME):
        chunk = pcm[start : start + _ALAC_FRAME]
        partial = len(chunk) != _ALAC_FRAME
        # element SCE (3 bits) + instance (4) + unused (12), then partial flag, 2 bits shift, escape flag
        header = "0" * 19 + ("1" if partial else "0") + "001"
        header += format(len(chunk), "032b") if partial else ""
        bits = np.concatenate(
            [
                np.array([int(bit) for bit in header], dtype=np.uint8),
                np.unpackbits(chunk.view(np.uint8)),
                np.array([1, 1, 1], dtype=np.uint8),  # ID_END
            ]
        )
        frames.append(np.packbits(bits).tobytes())
    return frames


def _alac_m4a(np: Any, samples: Any) -> bytes:
    """An M4A file holding Apple Lossless audio (uncompressed ALAC frames), mono 16-bit."""
    frames, count = _alac_frames(np, samples), len(samples)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    ftyp = _atom(b"ftyp", b"M4A ", struct.pack(">I", 0), b"M4A mp42isom")
    mdat = _atom(b"mdat", *frames)
    mvhd = _atom(
        b"mvhd",
        struct.pack(">IIIIIIH10x", 0, 0, 0, RATE, count, 0x10000, 0x100),
        matrix,
        bytes(24),
        struct.pack(">I", 2),
    )
    tkhd = _atom(
        b"tkhd",
        struct.pack(">IIIIII8xHHH2x", 7, 0, 0, 1, 0, count, 0, 0, 0x100),
        matrix,
        struct.pack(">II", 0, 0),
    )
    mdhd = _atom(b"mdhd", struct.pack(">IIIIIHH", 0, 0, 0, RATE, count, 0x55C4, 0))
    hdlr = _atom(b"hdlr", struct.pack(">II4s12x", 0, 0, b"soun"), b"SoundHandler\x00")
    cookie = _atom(
        b"alac",
        struct.pack(
            ">IIBBBBBBHIII", 0, _ALAC_FRAME, 0, 16, 40, 10, 14, 1, 255, max(map(len, frames)), RATE * 16, RATE
        ),
    )
    entry = _atom(b"alac", struct.pack(">6xH8xHHHHI", 1, 1, 16, 0, 0, RATE << 16), cookie)
    full, rest = divmod(count, _ALAC_FRAME)
    durations = [(full, _ALAC_FRAME)] * bool(full) + [(1, rest)] * bool(rest)
    stbl = _atom(
        b"stbl",
        _atom(b"stsd", struct.pack(">II", 0, 1), entry),
        _atom(b"stts", struct.pack(">II", 0, len(durations)), *(struct.pack(">II", *d) for d in durations)),
        _atom(b"stsc", struct.pack(">IIIII", 0, 1, 1, len(frames), 1)),
        _atom(b"stsz", struct.pack(">III", 0, 0, len(frames)), *(struct.pack(">I", len(f)) for f in frames)),
        _atom(b"stco", struct.pack(">III", 0, 1, len(ftyp) + 8)),
    )
    dinf = _atom(b"dinf", _atom(b"dref", struct.pack(">II", 0, 1), _atom(b"url ", struct.pack(">I", 1))))
    minf = _atom(b"minf", _atom(b"smhd", struct.pack(">IHH", 0, 0, 0)), dinf, stbl)
    moov = _atom(b"moov", mvhd, _atom(b"trak", tkhd, _atom(b"mdia", mdhd, hdlr, minf)))
    return ftyp + mdat + moov


def _silent_mp3(seconds: float) -> bytes:
    """Silent MPEG-1 Layer III frames (32 kbit/s, 32 kHz, mono): used when libsndfile lacks MP3."""
    frame = b"\xff\xfb\x18\xc0" + bytes(140)
    return frame * max(1, round(seconds * 32000 / 1152))


def _split_flac(data: bytes) -> tuple[bytes, bytes]:
    """Split a FLAC file into its STREAMINFO block (header included) and its audio frames."""
    if data[:4] != b"fLaC":
        raise ValueError("template is not a FLAC file")
    pos, streaminfo = 4, b""
    while True:
        if pos + 4 > len(data):
            raise ValueError("truncated FLAC metadata")
        kind, size = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        if kind & 0x7F == 0:
            streaminfo = bytes([0]) + data[pos + 1 : pos + 4 + size]
        pos += 4 + size
        if kind & 0x80:
            return streaminfo, data[pos:]


def _vorbis_block(track: DemoTrack) -> bytes:
    """The last metadata block of a FLAC file: a Vorbis comment holding `track`'s tags."""
    comment = _VC_FLAC_DICT()
    for key, value in (
        ("ARTIST", track.artist),
        ("ALBUMARTIST", track.albumartist),
        ("ALBUM", track.album),
        ("TITLE", track.title),
        ("GENRE", track.genre),
        ("DATE", track.date),
        ("TRACKNUMBER", f"{track.track}/{track.tracktotal}"),
    ):
        if value is not None:
            comment[key] = value
    data: bytes = comment.write(framing=False)
    return bytes([0x80 | 4]) + len(data).to_bytes(3, "big") + data


if __name__ == "__main__":
    sys.exit(main())
