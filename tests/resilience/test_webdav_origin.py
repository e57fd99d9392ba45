"""The WebDAV origin in-process against a real WsgiDAV server (issue 9): the folder-by-folder listing,
change detection from the ETag, exact ranged reads of the version that was opened, tags read through
ranged requests on reused connections, the checks that tell a server that does not answer, refuses
the password or has no such folder, and a server killed and started again. The test writes every
file into the served folder itself, so it knows each one's bytes without asking MusicFS."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chaos.webdavd import PASSWORD, USERNAME, WebDAVServer
from musicfs.core.errors import OriginError, OriginFileGone, OriginUnavailable
from musicfs.core.remotes import RemoteConfig
from musicfs.demo import DemoLibrary
from musicfs.origins import webdav
from musicfs.origins.base import DOES_NOT_ANSWER, WalkProblems
from musicfs.origins.remote import COOL_DOWN, RemoteOrigin
from musicfs.origins.webdav import webdav_origin
from musicfs.tags import read_tags
from tests.process.albums import source_flac, write_track


def _origin(
    server: WebDAVServer, *, path: str = "lib", password: str = PASSWORD, timeout: float = 5.0
) -> RemoteOrigin:
    remote = RemoteConfig(server.url(path), (("username", USERNAME),), (("password", password),))
    return webdav_origin(1, remote, timeout=timeout)


def _walk(origin: RemoteOrigin) -> dict[bytes, tuple[str, int, int]]:
    return {f.relpath: (f.kind, f.size, f.ino) for f in origin.walk(WalkProblems())}


def test_the_walk_lists_tracks_and_covers_below_the_path_folder_by_folder(
    webdav_server: WebDAVServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webdav, "PAGE", 1)  # a page per folder: the token carries the rest
    shown = {
        "Artist/Album/01 Song.flac": b"a" * 10,
        "Artist/Album/cover.jpg": b"c" * 3,
        "Artist/Album/02 Sång & 100%.mp3": b"b" * 20,
        "Other/x.ogg": b"o" * 7,
        "top.flac": b"t",
    }
    for relpath, data in shown.items():
        webdav_server.put(f"lib/{relpath}", data)
    for hidden in ("lib/Artist/.hidden.flac", "lib/.trash/old.flac", "lib/Artist/Album/notes.txt"):
        webdav_server.put(hidden, b"h")
    webdav_server.put("beside/x.flac", b"n")  # beside the origin's folder, not in it
    (webdav_server.root / "lib" / "Empty").mkdir()
    found = _walk(_origin(webdav_server))
    assert {k: v[:2] for k, v in found.items()} == {
        b"Artist/Album/01 Song.flac": ("audio", 10),
        b"Artist/Album/cover.jpg": ("cover", 3),
        "Artist/Album/02 Sång & 100%.mp3".encode(): ("audio", 20),
        b"Other/x.ogg": ("audio", 7),
        b"top.flac": ("audio", 1),
    }


def test_a_moved_file_keeps_its_number_and_a_changed_one_gets_a_new_one(webdav_server: WebDAVServer) -> None:
    origin = _origin(webdav_server)
    webdav_server.put("lib/a/one.flac", b"first version")
    two = webdav_server.put("lib/a/two.flac", b"another file")
    before = _walk(origin)
    (webdav_server.root / "lib" / "b").mkdir()
    os.rename(webdav_server.root / "lib/a/one.flac", webdav_server.root / "lib/b/one.flac")
    two.write_bytes(b"another fila")  # same size, new content, written a second later
    os.utime(two, (time.time() + 1, time.time() + 1))
    after = _walk(origin)
    assert after[b"b/one.flac"][2] == before[b"a/one.flac"][2]
    assert after[b"a/two.flac"][1] == before[b"a/two.flac"][1]
    assert after[b"a/two.flac"][2] != before[b"a/two.flac"][2]


def test_reads_give_exactly_the_bytes_on_the_server(webdav_server: WebDAVServer) -> None:
    data = bytes(range(256)) * 4099
    webdav_server.put("lib/t.flac", data)
    origin = _origin(webdav_server)
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
def test_a_handle_never_reads_bytes_of_a_newer_version(webdav_server: WebDAVServer) -> None:
    path = webdav_server.put("lib/t.flac", b"old" * 1000)
    origin = _origin(webdav_server)
    handle = origin.open(b"t.flac")
    assert origin.read(handle, 3, 0) == b"old"
    path.write_bytes(b"new" * 1000)
    os.utime(path, (time.time() + 1, time.time() + 1))
    with pytest.raises(OriginError, match="changed since it was opened"):
        origin.read(handle, 3, 3)
    fresh = origin.open(b"t.flac")
    assert origin.read(fresh, 3, 0) == b"new"


def test_the_tags_of_a_track_cost_one_request_on_a_reused_connection(
    webdav_server: WebDAVServer, tmp_path: Path, demo_library: DemoLibrary
) -> None:
    local = tmp_path / "track.flac"
    write_track(source_flac(demo_library), local, artist="Ánna", album="Fjord", title="Ice", track=3)
    webdav_server.put("lib/Ánna/track.flac", local.read_bytes())
    webdav_server.put("lib/empty.flac", b"")
    origin = _origin(webdav_server)
    store = origin.store
    assert isinstance(store, webdav.WebDAVStore)
    for _ in range(3):
        with origin.open_stream("Ánna/track.flac".encode()) as stream:
            assert read_tags(stream) == read_tags(str(local))
    pool = store._pool.connection_from_url(webdav_server.endpoint)  # urllib3's own counters
    assert (pool.num_connections, pool.num_requests) == (1, 3)
    with origin.open_stream(b"empty.flac") as stream:
        assert stream.read() == b""
    with pytest.raises(OriginFileGone):
        origin.open_stream(b"missing.flac")


def test_the_origin_check_tells_what_is_wrong(webdav_server: WebDAVServer) -> None:
    (webdav_server.root / "lib").mkdir()
    origin = _origin(webdav_server)
    assert origin.unavailable_reason(knows_files=False) is None
    reason = origin.unavailable_reason(knows_files=True)
    assert reason is not None and "nothing is stored under it" in reason
    webdav_server.put("lib/x.flac", b"x")
    assert origin.unavailable_reason(knows_files=True) is None
    wrong = _origin(webdav_server, password="not-the-password")
    reason = wrong.unavailable_reason(knows_files=True)
    assert reason is not None and "access denied (401)" in reason and "not-the-password" not in reason
    missing = _origin(webdav_server, path="no-such-folder")
    reason = missing.unavailable_reason(knows_files=True)
    assert reason is not None and "no such folder" in reason


@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_server_is_unavailable_within_the_deadline(webdav_server: WebDAVServer) -> None:
    webdav_server.put("lib/x.flac", b"x" * 100)
    origin = _origin(webdav_server, timeout=1.0)
    handle = origin.open(b"x.flac")
    webdav_server.freeze()
    started = time.monotonic()
    reason = origin.unavailable_reason(knows_files=True, timeout=0.5)
    assert reason is not None and DOES_NOT_ANSWER in reason
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(OriginUnavailable):
        origin.read(handle, 10, 0)
    assert time.monotonic() - started < 3.0
    with pytest.raises(OriginUnavailable, match="failed a moment ago"):
        origin.read(handle, 10, 0)
    webdav_server.thaw()
    deadline = time.monotonic() + 10
    while origin.unavailable_reason(knows_files=True, timeout=2.0) is not None:
        assert time.monotonic() < deadline, "the origin did not come back after the server did"
    assert origin.read(handle, 10, 0) == b"x" * 10


@pytest.mark.failure_mode("remote-flaky")
def test_a_server_killed_and_started_again_is_read_again(webdav_server: WebDAVServer) -> None:
    webdav_server.put("lib/x.flac", b"y" * 100)
    origin = _origin(webdav_server, timeout=2.0)
    handle = origin.open(b"x.flac")
    assert origin.read(handle, 10, 0) == b"y" * 10  # a kept-alive connection the kill resets
    webdav_server.kill()
    started = time.monotonic()
    with pytest.raises(OriginUnavailable, match="failed 4 times"):
        origin.read(handle, 10, 10)  # refused at once, each retry too
    assert time.monotonic() - started < 2.0
    webdav_server.restart()
    time.sleep(COOL_DOWN)  # the give-up's cool-down (a health check would end it sooner)
    assert origin.read(handle, 10, 10) == b"y" * 10
