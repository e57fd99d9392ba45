"""The S3 origin in-process against a real SeaweedFS (issue 9): listing, change detection from the
ETag, exact ranged reads of the version that was opened, tags read through ranged requests, and the
checks that tell a server that does not answer, refuses or holds nothing. The test uploads every
object itself, so it knows each one's bytes without asking MusicFS."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaos.seaweedfs import ACCESS_KEY, SECRET_KEY
from musicfs.core.errors import OriginError, OriginFileGone, OriginUnavailable
from musicfs.core.remotes import RemoteConfig
from musicfs.demo import DemoLibrary
from musicfs.origins import s3
from musicfs.origins.base import DOES_NOT_ANSWER, WalkProblems
from musicfs.origins.remote import RemoteOrigin
from musicfs.origins.s3 import s3_origin
from musicfs.tags import read_tags
from tests.conftest import S3Place
from tests.process.albums import source_flac, write_track


def _origin(
    place: S3Place, tmp_path: Path, *, url: str | None = None, secret: str = SECRET_KEY, timeout: float = 5.0
) -> RemoteOrigin:
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    remote = RemoteConfig(
        url or place.url,
        (("access_key_id", ACCESS_KEY), ("endpoint", place.server.endpoint)),
        (("secret_access_key", secret),),
    )
    return s3_origin(1, remote, timeout=timeout)


def _put(place: S3Place, relpath: str, data: bytes) -> None:
    place.client.put_object(Bucket=place.bucket, Key=place.key(relpath), Body=data)


def _walk(origin: RemoteOrigin) -> dict[bytes, tuple[str, int, int]]:
    problems = WalkProblems()
    return {f.relpath: (f.kind, f.size, f.ino) for f in origin.walk(problems)}


def test_the_walk_lists_tracks_and_covers_below_the_prefix_only(
    s3_place: S3Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "PAGE", 2)  # several listing pages, as a large bucket gives
    shown = {
        "Artist/Album/01 Song.flac": b"a" * 10,
        "Artist/Album/cover.jpg": b"c" * 3,
        "Artist/Album/02 Sång.mp3": b"b" * 20,
        "Other/x.ogg": b"o" * 7,
    }
    for relpath, data in shown.items():
        _put(s3_place, relpath, data)
    for hidden in ("Artist/.hidden.flac", ".trash/old.flac", "Artist/Album/notes.txt", "Artist/Album/"):
        _put(s3_place, hidden, b"h")
    s3_place.client.put_object(Bucket=s3_place.bucket, Key=f"{s3_place.prefix}x/beside.flac", Body=b"n")
    found = _walk(_origin(s3_place, tmp_path))
    assert {k: v[:2] for k, v in found.items()} == {
        b"Artist/Album/01 Song.flac": ("audio", 10),
        b"Artist/Album/cover.jpg": ("cover", 3),
        "Artist/Album/02 Sång.mp3".encode(): ("audio", 20),
        b"Other/x.ogg": ("audio", 7),
    }


def test_a_moved_object_keeps_its_number_and_a_changed_one_gets_a_new_one(
    s3_place: S3Place, tmp_path: Path
) -> None:
    origin = _origin(s3_place, tmp_path)
    _put(s3_place, "a/one.flac", b"first version")
    _put(s3_place, "a/two.flac", b"another file")
    before = _walk(origin)
    s3_place.client.copy_object(
        Bucket=s3_place.bucket,
        Key=s3_place.key("b/one.flac"),
        CopySource={"Bucket": s3_place.bucket, "Key": s3_place.key("a/one.flac")},
    )
    s3_place.client.delete_object(Bucket=s3_place.bucket, Key=s3_place.key("a/one.flac"))
    _put(s3_place, "a/two.flac", b"another fila")  # same size, new content
    after = _walk(origin)
    assert after[b"b/one.flac"][2] == before[b"a/one.flac"][2]
    assert after[b"a/two.flac"][1] == before[b"a/two.flac"][1]
    assert after[b"a/two.flac"][2] != before[b"a/two.flac"][2]


def test_reads_give_exactly_the_uploaded_bytes(s3_place: S3Place, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4099
    _put(s3_place, "t.flac", data)
    origin = _origin(s3_place, tmp_path)
    handle = origin.open(b"t.flac")
    try:
        assert origin.version_of(handle)[0] == len(data)
        assert origin.read(handle, 131072, 0) == data[:131072]
        assert origin.read(handle, 1000, 500_000) == data[500_000:501_000]
        assert origin.read(handle, 131072, len(data) - 10) == data[-10:]
        assert origin.read(handle, 10, len(data)) == b""
    finally:
        origin.close(handle)
    with pytest.raises(OriginFileGone):
        origin.open(b"missing.flac")


@pytest.mark.failure_mode("7.1")
def test_a_handle_never_reads_bytes_of_a_newer_version(s3_place: S3Place, tmp_path: Path) -> None:
    _put(s3_place, "t.flac", b"old" * 1000)
    origin = _origin(s3_place, tmp_path)
    handle = origin.open(b"t.flac")
    assert origin.read(handle, 3, 0) == b"old"
    _put(s3_place, "t.flac", b"new" * 1000)
    with pytest.raises(OriginError, match="changed since it was opened"):
        origin.read(handle, 3, 3)
    fresh = origin.open(b"t.flac")
    assert origin.read(fresh, 3, 0) == b"new"


def test_tags_are_read_through_ranged_requests(
    s3_place: S3Place, tmp_path: Path, demo_library: DemoLibrary
) -> None:
    local = tmp_path / "track.flac"
    write_track(source_flac(demo_library), local, artist="Ánna", album="Fjord", title="Ice", track=3)
    _put(s3_place, "Ánna/track.flac", local.read_bytes())
    origin = _origin(s3_place, tmp_path)
    with origin.open_stream("Ánna/track.flac".encode()) as stream:
        assert read_tags(stream) == read_tags(str(local))


def test_the_tags_of_a_track_cost_one_request(
    s3_place: S3Place, tmp_path: Path, demo_library: DemoLibrary
) -> None:
    """A first scan is bound by round trips: the first ranged GET tells the size and the version too,
    so no HEAD comes before it."""
    local = tmp_path / "track.flac"
    write_track(source_flac(demo_library), local, artist="Ánna", album="Fjord", title="Ice", track=3)
    _put(s3_place, "track.flac", local.read_bytes())
    _put(s3_place, "empty.flac", b"")
    origin = _origin(s3_place, tmp_path)
    requests: list[str] = []
    origin.store._client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.s3", lambda model, **_: requests.append(model.name)
    )
    with origin.open_stream(b"track.flac") as stream:
        assert read_tags(stream) == read_tags(str(local))
    assert requests == ["GetObject"]
    with origin.open_stream(b"empty.flac") as stream:
        assert stream.read() == b""
    with pytest.raises(OriginFileGone):
        origin.open_stream(b"missing.flac")


def test_the_origin_check_tells_what_is_wrong(s3_place: S3Place, tmp_path: Path) -> None:
    origin = _origin(s3_place, tmp_path)
    assert origin.unavailable_reason(knows_files=False) is None
    reason = origin.unavailable_reason(knows_files=True)
    assert reason is not None and "nothing is stored under it" in reason  # an empty prefix
    _put(s3_place, "x.flac", b"x")
    assert origin.unavailable_reason(knows_files=True) is None
    wrong = _origin(s3_place, tmp_path, secret="not-the-secret")
    reason = wrong.unavailable_reason(knows_files=True)
    assert reason is not None and "denied" in reason and "not-the-secret" not in reason
    nobucket = _origin(s3_place, tmp_path, url="s3://no-such-bucket-here/x")
    reason = nobucket.unavailable_reason(knows_files=True)
    assert reason is not None and "no bucket named no-such-bucket-here" in reason


@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_server_is_unavailable_within_the_deadline(s3_place: S3Place, tmp_path: Path) -> None:
    _put(s3_place, "x.flac", b"x" * 100)
    origin = _origin(s3_place, tmp_path, timeout=1.0)
    handle = origin.open(b"x.flac")
    s3_place.server.freeze()
    started = time.monotonic()
    reason = origin.unavailable_reason(knows_files=True, timeout=0.5)
    assert reason is not None and DOES_NOT_ANSWER in reason
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(OriginUnavailable):
        origin.read(handle, 10, 0)
    assert time.monotonic() - started < 3.0
    with pytest.raises(OriginUnavailable, match="failed a moment ago"):
        origin.read(handle, 10, 0)  # not asked again at once: a scan must not wait per file
    s3_place.server.thaw()
    deadline = time.monotonic() + 10
    while origin.unavailable_reason(knows_files=True, timeout=2.0) is not None:
        assert time.monotonic() < deadline, "the origin did not come back after the server did"
    assert origin.read(handle, 10, 0) == b"x" * 10
