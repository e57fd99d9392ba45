"""The seekable stream over ranged reads that remote origins hand to mutagen (issue 9): tags come out
exactly as from the file itself, from the head (FLAC, ID3v2) and from the tail (ID3v1), while only a
small part of a large file is fetched. The backend here is a plain local file read with pread, which
tests our adapter only; the S3 backend itself is tested against a real SeaweedFS."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from musicfs.core.errors import OriginUnavailable
from musicfs.demo import DemoLibrary
from musicfs.origins.ranged import RangedStream
from musicfs.tags import read_tags

MIB = 1 << 20


class _Fetches:
    """A local file as a ranged-read backend that counts what it was asked for."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.calls: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        return self.data[offset : offset + length]

    @property
    def fetched(self) -> int:
        return sum(length for _, length in self.calls)


def _stream(fetch: Callable[[int, int], bytes], size: int, name: str) -> RangedStream:
    return RangedStream(size, fetch, name)


def _padded_mp3(source: bytes, copies: int) -> bytes:
    """The demo's ID3v1-only MP3 with its audio frames repeated: tags only at the very end."""
    frames, tail = source[:-128], source[-128:]
    assert tail.startswith(b"TAG")
    return frames * copies + tail


def test_every_demo_track_reads_the_same_tags_through_the_stream(demo_library: DemoLibrary) -> None:
    compared = 0
    for track in demo_library.tracks:
        if track.corrupt:
            continue
        fetch = _Fetches(track.path)
        with _stream(fetch, len(fetch.data), track.path.name) as stream:
            assert read_tags(stream) == read_tags(str(track.path)), track.path
        compared += 1
    assert compared >= 10


def test_tags_at_the_tail_of_a_large_file_are_read_without_fetching_it(
    demo_library: DemoLibrary, tmp_path: Path
) -> None:
    source = next(t for t in demo_library.tracks if t.path.name == "bjork - human behaviour.mp3")
    big = tmp_path / "big.mp3"
    big.write_bytes(_padded_mp3(source.path.read_bytes(), copies=5000))
    assert big.stat().st_size > 8 * MIB
    fetch = _Fetches(big)
    with _stream(fetch, len(fetch.data), big.name) as stream:
        tags = read_tags(stream)
    assert tags == read_tags(str(big)) and tags.title == source.title
    assert any(offset + length == len(fetch.data) for offset, length in fetch.calls)  # the tail
    assert fetch.fetched < MIB, f"{fetch.fetched} bytes fetched of {len(fetch.data)}"


def test_tags_at_the_head_of_a_large_flac_are_read_without_fetching_it(
    demo_library: DemoLibrary, tmp_path: Path
) -> None:
    source = next(t for t in demo_library.tracks if t.path.suffix == ".flac" and not t.corrupt)
    big = tmp_path / "big.flac"
    big.write_bytes(source.path.read_bytes() + os.urandom(16 * MIB))  # a long stream of audio frames
    fetch = _Fetches(big)
    with _stream(fetch, len(fetch.data), big.name) as stream:
        assert read_tags(stream) == read_tags(str(big))
    assert fetch.fetched < MIB


def test_reads_seeks_and_the_end_of_the_file(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "x").write_bytes(data)
    fetch = _Fetches(tmp_path / "x")
    stream = _stream(fetch, len(data), "x")
    assert stream.seekable() and stream.readable()
    assert stream.read(10) == data[:10]
    assert stream.seek(-5, io.SEEK_END) == len(data) - 5
    assert stream.read() == data[-5:] and stream.read(1) == b""
    stream.seek(100_000)
    assert stream.read(150_000) == data[100_000:250_000]  # across blocks, in one piece
    stream.seek(70_000, io.SEEK_SET)
    stream.seek(5, io.SEEK_CUR)
    assert stream.tell() == 70_005 and stream.read(3) == data[70_005:70_008]
    calls = len(fetch.calls)
    stream.seek(100_000)
    assert stream.read(1000) == data[100_000:101_000]
    assert len(fetch.calls) == calls  # a block read before comes from the block cache
    with pytest.raises(ValueError):
        stream.seek(-1)


def test_a_backend_error_is_raised_as_it_is(tmp_path: Path) -> None:
    def failing(offset: int, length: int) -> bytes:
        raise OriginUnavailable("the server went away")

    with pytest.raises(OriginUnavailable):
        _stream(failing, 1000, "x").read(10)


def test_an_origin_error_is_not_taken_for_bad_tags(tmp_path: Path, demo_library: DemoLibrary) -> None:
    """A read that fails under mutagen is the origin's problem (try again later), not a bad file."""
    track = next(t for t in demo_library.tracks if t.path.suffix == ".flac" and not t.corrupt)
    data = track.path.read_bytes()

    def dies_after_the_head(offset: int, length: int) -> bytes:
        if offset > 0:
            raise OriginUnavailable("the server went away")
        return data[offset : offset + min(length, 64)]

    stream = RangedStream(len(data), dies_after_the_head, track.path.name, block_size=64)
    with pytest.raises(OriginUnavailable):
        read_tags(stream)
