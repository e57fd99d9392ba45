"""The demo library's files as bytes: tones, audio containers and tag blocks written for real.

Owns: the tone generator (`tone`), encoding through libsndfile (`encode`, `write_audio`: FLAC, Ogg,
Opus, WAV, AIFF, MP3, and ALAC in MP4 written by hand), tags written by mutagen (`write_tags`, plus a
bare ID3v1 block), deterministic Ogg serial numbers, a tiny PNG, and the pieces the bulk generator
reuses (`split_flac`, `vorbis_block`, `silent_mp3`). numpy and soundfile come with the ``demo`` extra
and are imported lazily (`audio_modules`).
Concurrency: plain blocking functions that only write the path they are given.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import VCFLACDict
from mutagen.id3 import TALB, TCMP, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK
from mutagen.ogg import OggPage

from musicfs.demo.catalogue import DemoTrack

RATE = 16000


_ALAC_FRAME = 4096


_OGG_SERIAL = 0x4D465321


# mutagen's classes are untyped; calling them through Any keeps mypy --strict quiet.
_OGG_PAGE: Any = OggPage


_VC_FLAC_DICT: Any = VCFLACDict


def audio_modules() -> tuple[Any, Any]:
    try:
        import numpy
        import soundfile
    except ImportError as exc:
        message = f"the demo library needs numpy and soundfile ({exc}): install musicfs[demo]"
        raise RuntimeError(message) from exc
    return numpy, soundfile


def tone(np: Any, seed: int, index: int, seconds: float) -> Any:
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


def encode(sf: Any, samples: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    container, subtype = _SF_FORMATS[fmt]
    sf.write(buffer, samples, RATE, format=container, subtype=subtype)
    return buffer.getvalue()


def write_audio(np: Any, sf: Any, path: Path, fmt: str, samples: Any) -> None:
    if fmt == "m4a":
        data = _alac_m4a(np, samples)
    elif fmt in ("mp3", "id3v1") and "MP3" not in sf.available_formats():
        data = silent_mp3(len(samples) / RATE)
    elif fmt in ("mp3", "id3v1"):
        data = encode(sf, samples, "mp3")
    else:
        data = encode(sf, samples, fmt)
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


def write_tags(path: Path, fmt: str, written: dict[str, Any]) -> None:
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


def png(width: int, height: int, seed: int) -> bytes:
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


def silent_mp3(seconds: float) -> bytes:
    """Silent MPEG-1 Layer III frames (32 kbit/s, 32 kHz, mono): used when libsndfile lacks MP3."""
    frame = b"\xff\xfb\x18\xc0" + bytes(140)
    return frame * max(1, round(seconds * 32000 / 1152))


def split_flac(data: bytes) -> tuple[bytes, bytes]:
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


def vorbis_block(track: DemoTrack) -> bytes:
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
