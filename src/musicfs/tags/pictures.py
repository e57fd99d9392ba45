"""Where a track's embedded front cover lies in its file, so the view can serve those very bytes.

Owns: choosing the picture a track offers as its album's cover and finding the byte range of that
picture's image in the file, for the formats that store it as it is: FLAC `PICTURE` blocks (also
after an ID3 header), ID3v2 `APIC` frames at the start of a file (MP3 and the like) and MP4 `covr`
atoms. The range is found by reading the region of the file the tag occupies and looking there for
the bytes mutagen decoded, so a range is only ever given when the file holds exactly those bytes
there. Pictures stored encoded give no range: Vorbis comments' `METADATA_BLOCK_PICTURE` (base64, split
over Ogg pages), unsynchronised or compressed ID3 frames. Only JPEG and PNG images are offered (the
names players look for are `cover.jpg` and `cover.png`), told by their first bytes, not by the MIME
type a tagger wrote.

Which picture: the front cover (picture type 3); failing that, the first picture whose type says
nothing of what it shows (type 0, "other"); MP4 has no types: its first `covr` image.
Concurrency: pure functions of the file object they are given (blocking reads: run them in worker
threads, like `musicfs.tags.read_tags`); no module state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4, MP4Tags

from musicfs.core.types import EmbeddedPicture

__all__ = ["front_cover"]

FRONT_COVER = 3
OTHER = 0
MAX_REGION = 64 << 20  # never read more than this to find a picture (a tag this large is damaged)
_KINDS = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"))
_COVR_PATH = (b"moov", b"udta", b"meta", b"ilst", b"covr")


def front_cover(audio: Any, stream: BinaryIO) -> EmbeddedPicture | None:
    """The embedded front cover of a parsed file and where its image is in `stream`, if it has one.

    Args:
        audio: what ``mutagen.File`` made of the file.
        stream: the same file, open for binary reading and seekable.

    Returns:
        The picture's byte range and kind, or None (no such picture, not JPEG or PNG, or stored
        encoded so that no byte range of the file holds it).
    """
    if isinstance(audio, FLAC):
        found = _choose((p.type, p.data) for p in audio.pictures)
        region = _flac_metadata(stream)
    elif isinstance(audio.tags, ID3):
        tags: Any = audio.tags
        found = _choose((frame.type, frame.data) for frame in tags.getall("APIC"))
        region = _id3_region(stream, audio.tags)
    elif isinstance(audio, MP4) and isinstance(audio.tags, MP4Tags):
        covers: Any = dict(audio.tags).get("covr", [])
        found = bytes(covers[0]) if covers else None
        region = _mp4_covr(stream)
    else:
        return None
    if found is None or region is None:
        return None
    kind = next((ext for magic, ext in _KINDS if found.startswith(magic)), None)
    if kind is None:
        return None
    start, length = region
    stream.seek(start)
    at = stream.read(min(length, MAX_REGION)).find(found)
    return None if at < 0 else EmbeddedPicture(start + at, len(found), kind)


def _choose(pictures: Iterable[tuple[int, bytes]]) -> bytes | None:
    other: bytes | None = None
    for kind, data in pictures:
        if kind == FRONT_COVER:
            return data
        if kind == OTHER and other is None:
            other = data
    return other


def _flac_metadata(stream: BinaryIO) -> tuple[int, int] | None:
    """The range of a FLAC file's metadata blocks (after an ID3 header, if any)."""
    stream.seek(0)
    start = 0
    head = stream.read(10)
    if head.startswith(b"ID3") and len(head) == 10:
        start = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
        stream.seek(start)
        head = stream.read(4)
    if not head.startswith(b"fLaC"):
        return None
    position = start + 4
    while position - start < MAX_REGION:
        stream.seek(position)
        block = stream.read(4)
        if len(block) < 4:
            return None
        position += 4 + int.from_bytes(block[1:4], "big")
        if block[0] & 0x80:  # the last metadata block
            return start, position - start
    return None


def _id3_region(stream: BinaryIO, tags: ID3) -> tuple[int, int] | None:
    """The range of an ID3v2 tag at the start of the file (one appended at the end is not looked at)."""
    stream.seek(0)
    if stream.read(3) != b"ID3":
        return None
    return 0, int(tags.size)


def _mp4_covr(stream: BinaryIO) -> tuple[int, int] | None:
    """The range of the `covr` atom of an MP4 file (moov/udta/meta/ilst/covr)."""
    start, end = 0, stream.seek(0, 2)
    for name in _COVR_PATH:
        found = _child(stream, start, end, name)
        if found is None:
            return None
        start, end = found
        if name == b"meta":
            start += 4  # a full atom: version and flags before its children
    return start, end - start


def _child(stream: BinaryIO, start: int, end: int, name: bytes) -> tuple[int, int] | None:
    """The body (after the header) of the first atom called `name` between `start` and `end`."""
    position = start
    while position + 8 <= end:
        stream.seek(position)
        head = stream.read(8)
        if len(head) < 8:
            return None
        size, header = int.from_bytes(head[:4], "big"), 8
        if size == 1:
            large = stream.read(8)
            if len(large) < 8:
                return None
            size, header = int.from_bytes(large, "big"), 16
        elif size == 0:
            size = end - position  # to the end of its parent
        if size < header or position + size > end:
            return None
        if head[4:8] == name:
            return position + header, position + size
        position += size
    return None


def _syncsafe(data: bytes) -> int:
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
    return value
