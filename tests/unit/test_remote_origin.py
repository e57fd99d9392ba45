"""The rules every remote origin shares (musicfs.origins.remote), over a store in memory: retries with
backoff for transient failures and cut bodies within the deadline, no retry of a final answer, and
a server that just failed is not asked again for a moment (a scan over a dead server must not wait
a deadline per file). The S3 store itself is tested against a real SeaweedFS
(tests/resilience/test_s3_origin.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from musicfs.core.errors import OriginFileGone, OriginUnavailable
from musicfs.origins import remote
from musicfs.origins.base import WalkProblems
from musicfs.origins.remote import Changed, RemoteFile, RemoteOrigin, Transient

DATA = bytes(range(256)) * 100


class _Store:
    """Files in memory whose next `failures` requests fail with `failure`."""

    url = "mem://test"

    def __init__(self) -> None:
        self.file = RemoteFile(b"a/t.flac", len(DATA), 10**9, '"v1"')
        self.failures = 0
        self.failure: Exception = Transient("connection reset")
        self.cut_once = False
        self.requests = 0

    def _maybe_fail(self) -> None:
        self.requests += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.failure

    def list_page(self, token: str | None) -> tuple[Sequence[RemoteFile], str | None]:
        self._maybe_fail()
        return [self.file], None

    def stat(self, relpath: bytes) -> RemoteFile:
        self._maybe_fail()
        if relpath != self.file.relpath:
            raise OriginFileGone(relpath.decode())
        return self.file

    def fetch(self, relpath: bytes, offset: int, length: int, etag: str) -> bytes:
        self._maybe_fail()
        if etag != self.file.etag:
            raise Changed("changed")
        if self.cut_once:
            self.cut_once = False
            return DATA[offset : offset + length // 2]
        return DATA[offset : offset + length]

    def fetch_first(self, relpath: bytes, length: int) -> tuple[RemoteFile, bytes]:
        found = self.stat(relpath)
        return found, self.fetch(relpath, 0, min(length, found.size), found.etag)

    def is_empty(self) -> bool:
        self._maybe_fail()
        return False


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF", 0.01)


@pytest.mark.failure_mode("remote-flaky")
def test_transient_failures_are_tried_again_and_then_succeed() -> None:
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=5.0)
    store.failures = 2
    handle = origin.open(b"a/t.flac")
    store.failures = 3
    assert origin.read(handle, 1000, 200) == DATA[200:1200]
    store.failures = 1
    assert [f.relpath for f in origin.walk(WalkProblems())] == [b"a/t.flac"]


@pytest.mark.failure_mode("remote-flaky")
def test_a_cut_body_is_fetched_again_never_returned_short() -> None:
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=5.0)
    handle = origin.open(b"a/t.flac")
    store.cut_once = True
    assert origin.read(handle, 4096, 0) == DATA[:4096]


@pytest.mark.failure_mode("remote-flaky")
def test_retries_end_with_the_attempts_as_unavailable() -> None:
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=5.0, attempts=3)
    store.failures = 10
    with pytest.raises(OriginUnavailable, match="failed 3 times"):
        origin.open(b"a/t.flac")
    assert store.requests == 3


@pytest.mark.failure_mode("remote-flaky")
def test_retries_never_go_past_the_deadline() -> None:
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=0.2, attempts=100)
    store.failures = 1000
    started = time.monotonic()
    with pytest.raises(OriginUnavailable):
        origin.open(b"a/t.flac")
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize("failure", [OriginFileGone("a/t.flac"), Changed("changed since it was opened")])
def test_final_answers_are_not_tried_again(failure: Exception) -> None:
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=5.0)
    handle = origin.open(b"a/t.flac")
    store.failures, store.failure = 1, failure
    requests = store.requests
    with pytest.raises(type(failure)):
        origin.read(handle, 10, 0)
    assert store.requests == requests + 1


@pytest.mark.failure_mode("remote-offline")
def test_a_server_that_just_failed_is_not_asked_again_for_a_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "COOL_DOWN", 0.3)
    store = _Store()
    origin = RemoteOrigin(1, store, deadline=5.0, attempts=2)
    store.failures = 2
    with pytest.raises(OriginUnavailable):
        origin.open(b"a/t.flac")
    requests = store.requests
    started = time.monotonic()
    with pytest.raises(OriginUnavailable, match="failed a moment ago"):
        origin.open(b"a/t.flac")
    assert store.requests == requests and time.monotonic() - started < 0.05
    assert origin.unavailable_reason(knows_files=True) is None  # the health check still asks it
    time.sleep(0.35)
    assert origin.read(origin.open(b"a/t.flac"), 4, 0) == DATA[:4]
