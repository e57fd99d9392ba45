"""The SFTP origin in-process against a real OpenSSH sshd (chaos/sshd.py), issue 9.

The tests write the served files themselves, so they know every byte. Covered: the recursive walk
over several listing pages, the version identity from size + mtime (a move keeps a track's number,
a change of mtime gives a new one), exact ranged reads, a handle that never reads a newer version,
tags through ranged reads, parallel reads over one SSH connection, unknown and changed host keys
refused with one line, a refused key, a frozen server given up within the deadline and back after
SIGCONT, a killed and restarted server read again by the same handle.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from chaos.sshd import PASSPHRASE, Sshd, keygen
from musicfs.core.errors import OriginError, OriginFileGone, OriginUnavailable
from musicfs.core.remotes import RemoteConfig
from musicfs.demo import DemoLibrary
from musicfs.origins import sftp
from musicfs.origins.base import DOES_NOT_ANSWER, WalkProblems
from musicfs.origins.remote import RemoteOrigin
from musicfs.origins.sftp import sftp_origin
from musicfs.tags import read_tags
from tests.process.albums import source_flac, write_track


def _origin(
    server: Sshd,
    root: Path,
    *,
    timeout: float = 5.0,
    known_hosts: Path | None = None,
    identity: Path | None = None,
) -> RemoteOrigin:
    remote = RemoteConfig(
        server.url(root),
        (
            ("identity_file", str(identity or server.identity_file)),
            ("known_hosts", str(known_hosts or server.known_hosts)),
        ),
        (("passphrase", PASSPHRASE),),
    )
    return sftp_origin(1, remote, timeout=timeout)


def _put(root: Path, relpath: str, data: bytes, mtime: int | None = None) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _walk(origin: RemoteOrigin) -> dict[bytes, tuple[str, int, int]]:
    return {f.relpath: (f.kind, f.size, f.ino) for f in origin.walk(WalkProblems())}


def _logins(server: Sshd) -> int:
    return len(re.findall(r"Accepted publickey for ", server.log()))


def test_the_walk_lists_every_folder_over_several_pages(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sftp, "PAGE", 2)  # several listing pages, as a large library gives
    root = tmp_path / "music"
    shown = {
        "Artist/Album/01 Song.flac": b"a" * 10,
        "Artist/Album/cover.jpg": b"c" * 3,
        "Artist/Album/02 Sång.mp3": b"b" * 20,
        "Artist/Other/CD2/x.flac": b"d" * 4,
        "Other/x.ogg": b"o" * 7,
        "top.flac": b"t",
    }
    for relpath, data in shown.items():
        _put(root, relpath, data)
    for hidden in ("Artist/.hidden.flac", ".trash/old.flac", "Artist/Album/notes.txt"):
        _put(root, hidden, b"h")
    (root / "Empty").mkdir()
    _put(tmp_path, "beside.flac", b"n")  # beside the origin's folder, not in it
    found = _walk(_origin(sshd, root))
    assert {k: v[:2] for k, v in found.items()} == {
        os.fsencode(relpath): ("cover" if relpath.endswith(".jpg") else "audio", len(data))
        for relpath, data in shown.items()
    }


def test_a_moved_file_keeps_its_number_and_a_changed_one_gets_a_new_one(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    _put(root, "a/one.flac", b"first version", mtime=1_700_000_000)
    _put(root, "a/two.flac", b"another file", mtime=1_700_000_000)
    origin = _origin(sshd, root)
    before = _walk(origin)
    (root / "b").mkdir()
    os.rename(root / "a/one.flac", root / "b/one.flac")  # rename keeps size and mtime
    _put(root, "a/two.flac", b"another fila", mtime=1_700_000_001)  # same size, a newer mtime
    after = _walk(origin)
    assert after[b"b/one.flac"][2] == before[b"a/one.flac"][2]
    assert after[b"a/two.flac"][1] == before[b"a/two.flac"][1]
    assert after[b"a/two.flac"][2] != before[b"a/two.flac"][2]


def test_reads_give_exactly_the_bytes_written(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    data = os.urandom(1_200_000)
    _put(root, "t.flac", data)
    origin = _origin(sshd, root)
    handle = origin.open(b"t.flac")
    try:
        assert origin.version_of(handle)[0] == len(data)
        assert origin.read(handle, 1 << 20, 0) == data[: 1 << 20]
        assert origin.read(handle, 1000, 500_000) == data[500_000:501_000]
        assert origin.read(handle, 131072, len(data) - 10) == data[-10:]
        assert origin.read(handle, 10, len(data)) == b""
    finally:
        origin.close(handle)
    with pytest.raises(OriginFileGone):
        origin.open(b"missing.flac")


@pytest.mark.failure_mode("7.1")
def test_a_handle_never_reads_bytes_of_a_newer_version(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    _put(root, "t.flac", b"old" * 1000, mtime=1_700_000_000)
    origin = _origin(sshd, root)
    handle = origin.open(b"t.flac")
    assert origin.read(handle, 3, 0) == b"old"
    _put(root, "t.flac", b"new" * 1000, mtime=1_700_000_005)
    with pytest.raises(OriginError, match="changed since it was opened"):
        origin.read(handle, 3, 3)
    fresh = origin.open(b"t.flac")
    assert origin.read(fresh, 3, 0) == b"new"


def test_tags_are_read_through_ranged_requests(sshd: Sshd, tmp_path: Path, demo_library: DemoLibrary) -> None:
    local = tmp_path / "track.flac"
    write_track(source_flac(demo_library), local, artist="Ánna", album="Fjord", title="Ice", track=3)
    root = tmp_path / "music"
    _put(root, "Ánna/track.flac", local.read_bytes())
    _put(root, "empty.flac", b"")
    origin = _origin(sshd, root)
    with origin.open_stream("Ánna/track.flac".encode()) as stream:
        assert read_tags(stream) == read_tags(str(local))
    with origin.open_stream(b"empty.flac") as stream:
        assert stream.read() == b""
    with pytest.raises(OriginFileGone):
        origin.open_stream(b"missing.flac")


def test_parallel_reads_share_one_ssh_connection(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    files = {f"f{i}.flac": os.urandom(300_000 + i) for i in range(12)}
    for relpath, data in files.items():
        _put(root, relpath, data)
    origin = _origin(sshd, root)
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def read(relpath: str) -> None:
        try:
            handle = origin.open(relpath.encode())
            results[relpath] = origin.read(handle, 1 << 20, 0)
            origin.close(handle)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(relpath,)) for relpath in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and results == files
    assert _logins(sshd) == 1


def test_an_unknown_or_changed_host_key_is_refused_with_one_line(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    _put(root, "x.flac", b"x")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    unknown = _origin(sshd, root, known_hosts=empty)
    started = time.monotonic()
    fingerprint = "SHA256:" + sshd.host_key_fingerprint()
    for _ in range(3):  # asked again and again (health checks): still refused
        reason = unknown.unavailable_reason(knows_files=True)
        assert reason is not None and "is not in" in reason and str(empty) in reason
        assert fingerprint in reason and "\n" not in reason
    assert time.monotonic() - started < 3, "a refused host key is final, not retried"
    other = tmp_path / "other_known_hosts"
    other.write_text(sshd.known_hosts_line(keygen(tmp_path / "another_host_key")))
    reason = _origin(sshd, root, known_hosts=other).unavailable_reason(knows_files=True)
    assert reason is not None and "has changed" in reason and fingerprint in reason and "\n" not in reason
    assert _logins(sshd) == 0


def test_a_key_the_server_does_not_accept_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    _put(root, "x.flac", b"x")
    stranger = keygen(tmp_path / "stranger", PASSPHRASE)
    reason = _origin(sshd, root, identity=stranger).unavailable_reason(knows_files=True)
    assert reason is not None and "refused" in reason and PASSPHRASE not in reason


def test_the_origin_check_tells_what_is_wrong(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    root.mkdir()
    origin = _origin(sshd, root)
    assert origin.unavailable_reason(knows_files=False) is None
    reason = origin.unavailable_reason(knows_files=True)
    assert reason is not None and "nothing is stored under it" in reason
    _put(root, "x.flac", b"x")
    assert origin.unavailable_reason(knows_files=True) is None
    reason = _origin(sshd, tmp_path / "nowhere").unavailable_reason(knows_files=True)
    assert reason is not None and "no folder" in reason


@pytest.mark.failure_mode("remote-offline")
def test_a_frozen_server_is_unavailable_within_the_deadline(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    _put(root, "x.flac", b"x" * 100)
    origin = _origin(sshd, root, timeout=1.0)
    handle = origin.open(b"x.flac")
    sshd.freeze()
    started = time.monotonic()
    reason = origin.unavailable_reason(knows_files=True, timeout=0.5)
    assert reason is not None and DOES_NOT_ANSWER in reason
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(OriginUnavailable):
        origin.read(handle, 10, 0)
    assert time.monotonic() - started < 3.0
    sshd.thaw()
    deadline = time.monotonic() + 10
    while origin.unavailable_reason(knows_files=True, timeout=2.0) is not None:
        assert time.monotonic() < deadline, "the origin did not come back after the server did"
    assert origin.read(handle, 10, 0) == b"x" * 10


@pytest.mark.failure_mode("remote-flaky")
def test_a_killed_and_restarted_server_is_read_again(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / "music"
    data = os.urandom(200_000)
    _put(root, "x.flac", data)
    origin = _origin(sshd, root, timeout=3.0)
    handle = origin.open(b"x.flac")
    assert origin.read(handle, 1000, 0) == data[:1000]
    sshd.kill()
    with pytest.raises(OriginUnavailable):
        origin.read(handle, 1000, 1000)  # nobody listens: refused, retried, given up
    sshd.start()
    deadline = time.monotonic() + 10
    while origin.unavailable_reason(knows_files=True, timeout=2.0) is not None:
        assert time.monotonic() < deadline, "the origin did not come back after the server did"
    assert origin.read(handle, 100_000, 1000) == data[1000:101_000]
    assert _logins(sshd) == 2  # a new connection after the restart, one again
