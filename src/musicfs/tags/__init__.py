"""Reading an audio file's tags into a normalised `TagSet`, over mutagen.

Owns: `read_tags`, the one place that knows how each tag format
(ID3, Vorbis comments, MP4 atoms, APEv2, ASF) names artist, album, track number and the rest.
`read_track` reads the tags and, in the same parse, finds the track's embedded front cover
(`musicfs.tags.pictures`).

Concurrency: every function here is pure and thread-safe (no module state is written). `read_tags`
does blocking file I/O, so async callers must run it in a worker thread (``trio.to_thread``), never
on the event loop.

Why the non-"easy" mutagen interfaces: ``mutagen.File(path, easy=True)`` only gives a key/value view
for MP3, MP4 and TrueAudio, and even there misses the compilation flag (ID3 ``TCMP``, MP4 ``cpil``).
So the file is opened once with the full interface and its tags are flattened here into one
lower-case ``key -> [text, ...]`` mapping, which a single alias table turns into a `TagSet`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import mutagen
from mutagen.apev2 import APEBinaryValue, APETextValue, APEv2
from mutagen.asf import ASFTags
from mutagen.id3 import ID3, TCON
from mutagen.mp4 import MP4Tags

from musicfs.core.errors import OriginError, TagReadError
from musicfs.core.types import EmbeddedPicture, TagSet
from musicfs.tags.pictures import front_cover

__all__ = ["Track", "parse_number", "parse_year", "read_tags", "read_track"]


# TagSet field -> the flattened keys (lower case) that may hold it, best first.
_ALBUMARTIST_KEYS = ("albumartist", "album artist", "album_artist", "tpe2", "aart", "wm/albumartist")
_ALIASES: dict[str, tuple[str, ...]] = {
    "artist": ("artist", "tpe1", "©art", "author", "wm/artist"),
    "albumartist": _ALBUMARTIST_KEYS + tuple(f"txxx:{key}" for key in _ALBUMARTIST_KEYS[:3]),
    "album": ("album", "talb", "©alb", "wm/albumtitle"),
    "title": ("title", "tit2", "©nam"),
    "genre": ("genre", "tcon", "©gen", "wm/genre"),
    "date": ("date", "tdrc", "©day", "year", "wm/year", "tyer"),
    "track": ("tracknumber", "trck", "track", "trkn", "wm/tracknumber"),
    "tracktotal": ("tracktotal", "totaltracks", "txxx:tracktotal", "txxx:totaltracks"),
    "disc": ("discnumber", "tpos", "disc", "disk", "wm/partofset"),
    "disctotal": ("disctotal", "totaldiscs", "txxx:disctotal", "txxx:totaldiscs"),
    "compilation": ("compilation", "tcmp", "cpil", "wm/iscompilation", "txxx:compilation"),
    "mb_albumid": (
        "musicbrainz_albumid",  # Vorbis comments, APEv2
        "txxx:musicbrainz album id",  # ID3
        "----:com.apple.itunes:musicbrainz album id",  # MP4
        "musicbrainz/album id",  # ASF
    ),
}

_NUMBER_RE = re.compile(r"\s*0*(\d{1,6})\s*(?:/\s*(?:0*(\d{1,6}))?\s*)?")
# A year 1000-2999 not glued to other digits, except a compact date such as "20010503".
_YEAR_RE = re.compile(r"(?<!\d)([12]\d{3})(?:(?!\d)|(?=\d{4}(?!\d)))")
_TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})


@dataclass(frozen=True, slots=True)
class Track:
    """What one read of an audio file tells: its tags and, when it has one, its embedded front cover."""

    tags: TagSet
    picture: EmbeddedPicture | None = None


def read_tags(path: str | bytes | BinaryIO) -> TagSet:
    """Read and normalise the tags of one audio file (blocking I/O: run it in a worker thread).

    Args:
        path: the path of a regular file (a FIFO would block the reading thread); bytes are accepted
            for names that are not valid UTF-8. Or a binary file open for reading whose `name` is its
            path (the name's extension helps tell the format).

    Returns:
        The file's tags. A readable audio file without tags gives ``TagSet(duration=...)``;
        ``duration`` is None when the format does not tell it (mutagen reports 0).

    Raises:
        TagReadError: the file could not be opened or parsed, or mutagen does not know it as
            audio. No other exception escapes, whatever the file holds.
        OriginError: a stream's origin failed under the reader (a remote origin's server went
            away): the file could not be read now, which says nothing about its tags.
    """
    return _parse(path, None).tags


def read_track(stream: BinaryIO) -> Track:
    """`read_tags`, and where in the file the track's embedded front cover is (see
    `musicfs.tags.pictures`), from one parse of an open, seekable file.

    Raises:
        TagReadError: as `read_tags`. A picture that cannot be located is no error: it is not offered.
    """
    return _parse(stream, stream)


def _parse(path: str | bytes | BinaryIO, stream: BinaryIO | None) -> Track:
    try:
        audio = mutagen.File(path)
    except OriginError:
        raise
    except Exception as exc:  # mutagen raises many unrelated types on damaged files
        raise TagReadError(_reason(exc)) from exc
    if audio is None:
        raise TagReadError("not an audio file that mutagen knows")
    try:
        fields = _flatten(audio.tags) if audio.tags is not None else {}
        tags = _tagset(fields, getattr(audio.info, "length", None))
    except Exception as exc:  # a tag value of a shape nobody expected
        raise TagReadError(_reason(exc)) from exc
    if stream is None:
        return Track(tags)
    try:
        return Track(tags, front_cover(audio, stream))
    except OSError as exc:
        raise TagReadError(_reason(exc)) from exc
    except Exception:  # a damaged tag region: the track keeps its tags, without a picture
        return Track(tags)


def parse_number(text: str | None) -> tuple[int | None, int | None]:
    """Parse a track or disc number such as ``"3"``, ``"03"`` or ``"3/12"``.

    Args:
        text: the tag's text, or None.

    Returns:
        ``(number, total)``; each is None when missing, zero, or not a plain number.
    """
    match = _NUMBER_RE.fullmatch(text) if text else None
    if match is None:
        return None, None
    number, total = (int(group) if group else None for group in match.groups())
    return number or None, total or None


def parse_year(date: str | None) -> int | None:
    """Return the first four-digit year (1000-2999) in a date such as ``"2001-05-03"`` or ``"May 2001"``.

    Args:
        date: the date tag's text, or None.

    Returns:
        The year, or None when the text holds none.
    """
    match = _YEAR_RE.search(date) if date else None
    return int(match.group(1)) if match else None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _flatten(tags: Any) -> dict[str, list[str]]:
    """Turn any mutagen tag object into ``{lower-case key: [text, ...]}``."""
    pairs: Iterable[tuple[str, Any]]
    if isinstance(tags, ID3):
        pairs = ((key, _id3_texts(frame)) for key, frame in _items(tags))
    elif isinstance(tags, APEv2):
        pairs = ((key, _ape_texts(value)) for key, value in _items(tags))
    elif isinstance(tags, ASFTags):
        pairs = ((key, [attr.value for attr in attrs]) for key, attrs in _items(_as_dict(tags)))
    elif isinstance(tags, MP4Tags):
        pairs = ((key, _mp4_texts(key, value)) for key, value in _items(tags))
    elif hasattr(tags, "as_dict"):  # Vorbis comments (FLAC, Ogg Vorbis, Opus, Speex...)
        pairs = _items(_as_dict(tags))
    else:
        pairs = ((key, tags[key]) for key in list(tags.keys()))
    fields: dict[str, list[str]] = {}
    for key, values in pairs:
        texts = [_text(value) for value in (values if isinstance(values, list) else [values])]
        fields.setdefault(str(key).lower(), []).extend(text for text in texts if text)
    return fields


def _items(mapping: Any) -> list[tuple[Any, Any]]:
    """``mapping.items()`` as a list (mutagen's tag classes are untyped)."""
    return list(mapping.items())


def _as_dict(tags: Any) -> Any:
    return tags.as_dict()


def _id3_texts(frame: Any) -> list[Any]:
    if isinstance(frame, TCON):
        return list(frame.genres)
    return list(getattr(frame, "text", []))


def _ape_texts(value: Any) -> list[Any]:
    if isinstance(value, APETextValue):
        return list(value)
    return [] if isinstance(value, APEBinaryValue) else [str(value)]


def _mp4_texts(key: str, value: Any) -> list[Any]:
    if key in ("trkn", "disk"):
        return [f"{pair[0]}/{pair[1]}" if len(pair) > 1 and pair[1] else f"{pair[0]}" for pair in value]
    if key == "cpil":
        return ["1" if value else "0"]
    if key == "covr":
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, bool):
        value = "1" if value else "0"
    text = str(value).replace("\x00", "").strip()
    return text or None


def _values(fields: dict[str, list[str]], name: str) -> list[str]:
    """The distinct values of the first alias of `name` that has any."""
    for key in _ALIASES[name]:
        values = fields.get(key)
        if values:
            return list(dict.fromkeys(values))
    return []


def _joined(fields: dict[str, list[str]], name: str) -> str | None:
    return "; ".join(_values(fields, name)) or None


def _number(fields: dict[str, list[str]], name: str) -> tuple[int | None, int | None]:
    values = _values(fields, name)
    return parse_number(values[0] if values else None)


def _tagset(fields: dict[str, list[str]], length: object) -> TagSet:
    date = _joined(fields, "date")
    track, tracktotal = _number(fields, "track")
    disc, disctotal = _number(fields, "disc")
    compilation = _values(fields, "compilation")
    release = _values(fields, "mb_albumid")
    duration = float(length) if isinstance(length, (int, float)) else None
    return TagSet(
        artist=_joined(fields, "artist"),
        albumartist=_joined(fields, "albumartist"),
        album=_joined(fields, "album"),
        title=_joined(fields, "title"),
        genre=_joined(fields, "genre"),
        date=date,
        year=parse_year(date),
        track=track,
        tracktotal=tracktotal or _number(fields, "tracktotal")[0],
        disc=disc,
        disctotal=disctotal or _number(fields, "disctotal")[0],
        compilation=bool(compilation) and compilation[0].lower() in _TRUE_WORDS,
        mb_albumid=release[0].lower() if release else None,
        duration=duration if duration is not None and math.isfinite(duration) and duration > 0 else None,
    )
