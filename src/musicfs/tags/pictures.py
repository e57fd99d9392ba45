"""Where a track's embedded front cover lies in its file, so the view can serve those very bytes.

Owns: choosing the picture a track offers as its album's cover and finding the byte range of that
picture's image in the file, for the formats that store it as it is: FLAC `PICTURE` blocks (also
after an ID3 header), ID3v2 `APIC` frames at the start of a file (MP3 and the like) and MP4 `covr`
atoms. The range is only ever given where the file holds the bytes mutagen decoded: for ID3 and MP4
it is found by looking for them in the region the tag occupies; for FLAC it is read from the blocks'
own structure and checked by its length and its first and last bytes (looking for a whole picture
cost a second read of it: 4x mutagen's parse for a 500 KB image, against 1.13x now).
Vorbis comments' `METADATA_BLOCK_PICTURE` (Ogg Vorbis, Opus and the other Ogg codecs) is a FLAC
picture block in base64 inside the comment packet, which Ogg pages split: no byte range of the file
holds the image. Such a picture is offered without an offset (its decoded size and kind only), and
`decoded_front_cover` decodes it again from the track whenever the view's cover is opened (the
caller checks first that the track is the version the scan saw; nothing is copied out of the
origin, so nothing can go stale or be left behind). Pictures over `MAX_DECODED` are not offered that
way (each open holds the image in memory). Unsynchronised or compressed ID3 frames give no cover.
Only JPEG and PNG images are offered (the names players look for are `cover.jpg` and `cover.png`),
told by their first bytes, not by the MIME type a tagger wrote.

Which picture: the front cover (picture type 3); failing that, the first picture whose type says
nothing of what it shows (type 0, "other"); MP4 has no types: its first `covr` image.
Concurrency: pure functions of the file object they are given (blocking reads: run them in worker
threads, like `musicfs.tags.read_tags`); no module state.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3
from mutagen.mp4 import MP4, MP4Tags
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggtheora import OggTheora
from mutagen.oggvorbis import OggVorbis

from musicfs.core.errors import OriginError
from musicfs.core.types import EmbeddedPicture

__all__ = ["decoded_front_cover", "front_cover"]

FRONT_COVER = 3
OTHER = 0
PROBE = 256  # how many first bytes of a picture are looked for before comparing all of it
MAX_REGION = 64 << 20  # never read more than this to find a picture (a tag this large is damaged)
_FLAC_PICTURE = 6  # the metadata block type
_KINDS = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"))
_COVR_PATH = (b"moov", b"udta", b"meta", b"ilst", b"covr")
MAX_DECODED = 16 << 20  # the largest picture decoded at each open of its cover (held in memory)
_PICTURE: Any = Picture  # mutagen is untyped
# Ogg files whose Vorbis comments may hold METADATA_BLOCK_PICTURE.
_OGG_WITH_COMMENTS = (OggVorbis, OggOpus, OggFLAC, OggSpeex, OggTheora)


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
        return _flac_front_cover(audio, stream)
    if isinstance(audio, _OGG_WITH_COMMENTS):
        data = _choose(_vorbis_pictures(audio))
        kind = _kind(data)
        if data is None or kind is None or len(data) > MAX_DECODED:
            return None
        return EmbeddedPicture(None, len(data), kind)
    if isinstance(audio.tags, ID3):
        tags: Any = audio.tags
        found = _choose((frame.type, frame.data) for frame in tags.getall("APIC"))
        locate = _id3_region
    elif isinstance(audio, MP4) and isinstance(audio.tags, MP4Tags):
        covers: Any = dict(audio.tags).get("covr", [])
        found = bytes(covers[0]) if covers else None
        locate = _mp4_covr
    else:
        return None
    if found is None:
        return None
    kind = _kind(found)
    region = locate(stream) if kind is not None else None
    if kind is None or region is None:
        return None
    start, length = region
    stream.seek(start)
    at = _find(stream.read(min(length, MAX_REGION)), found)
    return None if at < 0 else EmbeddedPicture(start + at, len(found), kind)


def decoded_front_cover(stream: BinaryIO) -> bytes | None:
    """The image of the front cover that an Ogg file's Vorbis comments hold (the one `front_cover`
    offered without an offset), decoded from `stream`, or None if it holds none (or mutagen cannot
    parse it). Blocking reads: run it in a worker thread."""
    try:
        audio = mutagen.File(stream)
    except (OriginError, OSError):
        raise  # the origin failed under the reader: that says nothing of the file
    except Exception:  # mutagen raises many unrelated types on damaged files
        return None
    return _choose(_vorbis_pictures(audio)) if isinstance(audio, _OGG_WITH_COMMENTS) else None


def _vorbis_pictures(audio: Any) -> Iterator[tuple[int, bytes]]:
    """``(type, image)`` of each readable METADATA_BLOCK_PICTURE; a damaged one is passed over."""
    for value in audio.tags.get("metadata_block_picture", []) if audio.tags is not None else []:
        try:
            picture: Any = _PICTURE(base64.b64decode(value, validate=True))
        except (ValueError, mutagen.MutagenError):  # bad base64 (binascii.Error) or block
            continue
        yield picture.type, picture.data


def _find(region: bytes, data: bytes) -> int:
    """Where `data` starts in `region`, or -1. Looks for its first bytes, then compares the rest:
    searching for a whole picture at once cost ~1 ms per 500 KB, seven times mutagen's parse."""
    probe = data[:PROBE]
    at = region.find(probe)
    while at >= 0 and region[at : at + len(data)] != data:
        at = region.find(probe, at + 1)
    return at


def _flac_front_cover(audio: FLAC, stream: BinaryIO) -> EmbeddedPicture | None:
    """A FLAC's picture is located by its blocks' structure: no second read of the image."""
    pictures: Any = audio.pictures
    chosen = _choose((p.type, p.data) for p in pictures)
    kind = _kind(chosen)
    if chosen is None or kind is None:
        return None
    for offset, length in _flac_pictures(stream):
        if length == len(chosen) and _same(stream, offset, chosen):
            return EmbeddedPicture(offset, length, kind)
    return None


def _kind(data: bytes | None) -> str | None:
    return None if data is None else next((ext for magic, ext in _KINDS if data.startswith(magic)), None)


def _choose(pictures: Iterable[tuple[int, bytes]]) -> bytes | None:
    other: bytes | None = None
    for kind, data in pictures:
        if kind == FRONT_COVER:
            return data
        if kind == OTHER and other is None:
            other = data
    return other


def _flac_pictures(stream: BinaryIO) -> list[tuple[int, int]]:
    """Where the image data of each PICTURE block of a FLAC file is: ``(offset, length)``, in order
    (the blocks follow "fLaC", itself after an ID3 header if there is one)."""
    stream.seek(0)
    position = 0
    head = stream.read(10)
    if head.startswith(b"ID3") and len(head) == 10:
        position = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
        stream.seek(position)
        head = stream.read(4)
    if not head.startswith(b"fLaC"):
        return []
    position += 4
    found: list[tuple[int, int]] = []
    while True:
        stream.seek(position)
        block = stream.read(4)
        if len(block) < 4:
            return found
        length = int.from_bytes(block[1:4], "big")
        if block[0] & 0x7F == _FLAC_PICTURE:
            where = _flac_picture_data(stream, position + 4, length)
            if where is not None:
                found.append(where)
        position += 4 + length
        if block[0] & 0x80:  # the last metadata block
            return found


def _flac_picture_data(stream: BinaryIO, start: int, length: int) -> tuple[int, int] | None:
    """The image inside a PICTURE block's body: type, MIME and description (each length-prefixed),
    four numbers, then the data's length and the data."""
    stream.seek(start + 4)
    offset = start + 4
    for _ in range(2):  # the MIME type, then the description
        size = int.from_bytes(stream.read(4), "big")
        offset += 4 + size
        stream.seek(offset)
    offset += 16
    stream.seek(offset)
    size = int.from_bytes(stream.read(4), "big")
    offset += 4
    return (offset, size) if offset + size <= start + length else None


def _same(stream: BinaryIO, offset: int, data: bytes) -> bool:
    """Whether the file holds `data` at `offset`, judged by its first and last bytes (the range was
    found by the file's own structure; this guards against reading that structure wrongly)."""
    probe = min(PROBE, len(data))
    stream.seek(offset)
    if stream.read(probe) != data[:probe]:
        return False
    stream.seek(offset + len(data) - probe)
    return stream.read(probe) == data[len(data) - probe :]


def _id3_region(stream: BinaryIO) -> tuple[int, int] | None:
    """The range of an ID3v2 tag at the start of the file (one appended at the end is not looked at)."""
    stream.seek(0)
    head = stream.read(10)
    if len(head) < 10 or not head.startswith(b"ID3"):
        return None
    return 0, 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)


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
