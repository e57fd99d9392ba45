"""The chunk store under faults: a writer that dies at each publish step (3.5), a full disk (2.8), and
a cache disk that turns read-only or vanishes (6.2). The store must stay consistent (every record has
its intact file, every file its record, nothing in tmp/) and must never raise to the reader.

A real 2 MiB tmpfs gives a real ENOSPC, and read-only bind mounts of tmp/ and chunks/ a real EROFS
(chmod would not stop root). Mounting needs root, as the process tests do; if it fails the test
fails, it is never skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from musicfs.cache.records import CacheRecords
from musicfs.cache.space import Watermarks
from musicfs.cache.store import ChunkStore, VersionKey
from musicfs.core.faults import install_hook

CHUNK = 64 * 1024
FAULT_POINTS = ("cache.before_write", "cache.before_rename", "cache.before_record")
CRASH_EXIT = 17


class InjectedFault(Exception):
    pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _version(name: bytes, size: int = 4 * CHUNK) -> VersionKey:
    return VersionKey(1, name, size, 10, 20)


def _chunk(seed: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)


def _store(
    root: Path, clock: Callable[[], float] = lambda: 0.0, *, marks: Watermarks | None = None
) -> ChunkStore:
    return ChunkStore(
        root,
        watermarks=marks or Watermarks(1 << 30),
        chunk_size=CHUNK,
        retry_interval=30.0,
        clock=clock,
    )


def _assert_consistent(root: Path) -> None:
    """Records and files agree, every file is intact, tmp/ is empty, and a new check repairs nothing."""
    files = {path.name: path for path in (root / "chunks").rglob("*") if path.is_file()}
    with closing(sqlite3.connect(root / "cache.sqlite")) as db:
        recorded = dict(db.execute("SELECT hash, size FROM chunks"))
        dangling = db.execute("SELECT count(*) FROM parts WHERE hash NOT IN (SELECT hash FROM chunks)")
        assert dangling.fetchone()[0] == 0
    assert files.keys() == recorded.keys()
    for digest, path in files.items():
        data = path.read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (digest, recorded[digest])
    assert list((root / "tmp").iterdir()) == []
    store = _store(root)
    assert store.check(full=True).repairs == 0
    store.close()


def _crash(store: ChunkStore) -> None:
    """Leave `store` as a crash would: the chunk files, the WAL and the in-use marker stay, and the
    database's locks go (the kernel drops them with the process; the store opens it exclusively)."""
    records = store._records
    assert records is not None
    records._db.close()


def _fault_at(point: str, fault: Callable[[], None]) -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name == point:
            fault()

    return hook


def _raise() -> None:
    raise InjectedFault


@pytest.mark.failure_mode("3.5")
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_an_exception_at_each_publish_step_leaves_a_consistent_store(tmp_path: Path, point: str) -> None:
    root = tmp_path / "cache"
    store = _store(root)
    assert store.put(_version(b"a"), 0, _chunk(0))
    install_hook(_fault_at(point, _raise))
    try:
        with pytest.raises(InjectedFault):
            store.put(_version(b"a"), 1, _chunk(1))
    finally:
        install_hook(None)
    _crash(store)
    reopened = _store(root)
    assert reopened.unclean
    reopened.check()
    assert reopened.get(_version(b"a"), 0) == _chunk(0)
    assert reopened.get(_version(b"a"), 1) is None  # never recorded
    reopened.close()
    _assert_consistent(root)
    store.close()


@pytest.mark.failure_mode("3.5")
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_process_killed_at_each_publish_step_leaves_a_consistent_store(tmp_path: Path, point: str) -> None:
    root = tmp_path / "cache"
    pid = os.fork()
    if pid == 0:  # the child: cache one chunk, then die at the fault point without any clean-up
        code = 1
        try:
            store = _store(root)
            if store.put(_version(b"a"), 0, _chunk(0)):
                install_hook(_fault_at(point, lambda: os._exit(CRASH_EXIT)))
                store.put(_version(b"a"), 1, _chunk(1))
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_EXIT
    store = _store(root)
    assert store.unclean
    report = store.check()
    assert report.stray_temp_removed == (1 if point == "cache.before_rename" else 0)
    assert report.orphan_files_removed == (1 if point == "cache.before_record" else 0)
    assert store.get(_version(b"a"), 0) == _chunk(0)
    assert store.get(_version(b"a"), 1) is None
    store.close()
    _assert_consistent(root)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, unmounted afterwards; mounting failures fail the test."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("musicfs.cache") and r.levelno >= logging.WARNING
    ]


@pytest.mark.allow_log(r"disabled, reading origins directly: ENOSPC", r"works again")
@pytest.mark.failure_mode("2.8")
@pytest.mark.failure_mode("6.2")
def test_a_full_disk_turns_the_cache_into_a_pass_through_until_there_is_room(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    root = small_fs / "cache"
    # Watermarks off, so the disk really fills instead of eviction making room.
    store = _store(root, clock, marks=Watermarks(1 << 30, min_free_fraction=0, target_free_fraction=0))
    store.check()
    assert store.put(_version(b"a"), 0, _chunk(0))
    filler = small_fs / "filler"
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(b"\0" * 4096)
            except OSError:
                break
    assert not store.put(_version(b"a"), 1, _chunk(1))
    assert store.mode == "pass-through"
    assert "ENOSPC" in (store.usage().reason or "")
    assert not store.put(_version(b"a"), 2, _chunk(2))  # no second warning, no error
    assert store.get(_version(b"a"), 0) is None  # pass-through: nothing is read from the cache disk
    assert len(_warnings(caplog)) == 1
    assert list((root / "tmp").iterdir()) == []  # nothing partial remains
    assert len([path for path in (root / "chunks").rglob("*") if path.is_file()]) == 1
    filler.unlink()
    clock.now += 29
    assert not store.put(_version(b"a"), 1, _chunk(1))  # not retried before the interval
    clock.now += 1
    assert store.put(_version(b"a"), 1, _chunk(1))
    assert store.mode == "ok"
    assert store.get(_version(b"a"), 0) == _chunk(0)
    assert store.get(_version(b"a"), 1) == _chunk(1)
    assert len(_warnings(caplog)) == 2  # disabled, works again
    store.close()
    _assert_consistent(root)


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """Real EROFS for writes into `folders`: each is bind-mounted onto itself read-only (remounting
    the whole filesystem read-only is refused while the database is open for writing)."""
    mounted: list[Path] = []
    try:
        for folder in folders:
            subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
            mounted.append(folder)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        for folder in reversed(mounted):
            subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.allow_log(r"disabled, reading origins directly: EROFS", r"works again")
@pytest.mark.failure_mode("6.2")
def test_a_read_only_cache_disk_is_a_pass_through_until_it_is_writable(tmp_path: Path) -> None:
    clock = FakeClock()
    root = tmp_path / "cache"
    store = _store(root, clock)
    assert store.put(_version(b"a"), 0, _chunk(0))
    with read_only(root / "tmp", root / "chunks"):
        assert not store.put(_version(b"a"), 1, _chunk(1))
        assert store.mode == "pass-through"
        assert "EROFS" in (store.usage().reason or "")
        clock.now += 30
        assert store.get(_version(b"a"), 0) is None  # the retry's check cannot write: still off
        assert store.mode == "pass-through"
    clock.now += 30
    assert store.get(_version(b"a"), 0) == _chunk(0)
    assert store.mode == "ok"
    assert store.put(_version(b"a"), 1, _chunk(1))
    store.close()
    _assert_consistent(root)


@pytest.mark.allow_log(r"disabled, reading origins directly: ENOENT", r"works again")
@pytest.mark.failure_mode("6.2")
def test_a_vanished_cache_folder_is_a_pass_through_until_it_is_back(tmp_path: Path) -> None:
    clock = FakeClock()
    root, away = tmp_path / "cache", tmp_path / "away"
    store = _store(root, clock)
    assert store.put(_version(b"a"), 0, _chunk(0))
    root.rename(away)
    assert store.get(_version(b"a"), 0) is None  # its file is gone with the folder: a miss
    assert store.mode == "pass-through"
    assert not store.put(_version(b"a"), 1, _chunk(1))
    clock.now += 30
    assert not store.put(_version(b"a"), 1, _chunk(1))
    assert not root.exists()  # an absent cache disk is never replaced by a new folder
    away.rename(root)
    clock.now += 30
    assert store.get(_version(b"a"), 0) == _chunk(0)
    assert store.put(_version(b"a"), 1, _chunk(1))
    assert store.mode == "ok"
    store.close()
    _assert_consistent(root)


@pytest.mark.allow_log(r"disabled, reading origins directly: ENOTDIR")
@pytest.mark.failure_mode("6.2")
def test_a_cache_folder_that_cannot_be_created_starts_in_pass_through(tmp_path: Path) -> None:
    clock = FakeClock()
    (tmp_path / "file").write_bytes(b"")
    store = _store(tmp_path / "file" / "cache", clock)  # a path under a regular file: ENOTDIR
    assert store.mode == "pass-through"
    assert not store.put(_version(b"a"), 0, _chunk(0))
    assert store.get(_version(b"a"), 0) is None
    assert store.check().failure is not None
    store.close()


@pytest.mark.allow_log(
    r"content cache in .* disabled, reading origins directly: ENOENT", r"content cache in .* works again"
)
@pytest.mark.failure_mode("6.2")
def test_a_failure_never_breaks_a_call_still_using_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's call is between two steps when another call finds the disk broken: the reader gets
    an answer (here a miss), never "Cannot operate on a closed database", which used to reach the
    reader as EIO, and to break a retry's check the same way. The pause is exact timing: a wrapper
    holds the reader's lookup until the other call has failed for real (its chunk folder is gone)."""
    clock = FakeClock()
    root = tmp_path / "cache"
    store = _store(root, clock)
    assert store.put(_version(b"a"), 0, _chunk(0))
    entered, go = threading.Event(), threading.Event()
    armed = [True]
    real_lookup = CacheRecords.lookup

    def held_lookup(records: CacheRecords, version: VersionKey, chunk_index: int) -> tuple[str, int] | None:
        if armed.pop() if armed else False:
            entered.set()
            go.wait(10)
        return real_lookup(records, version, chunk_index)

    monkeypatch.setattr(CacheRecords, "lookup", held_lookup)
    outcome: list[object] = []

    def reader() -> None:
        try:
            outcome.append(store.get(_version(b"a"), 0))
        except Exception as exc:  # what the reader's FUSE request would turn into EIO
            outcome.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert entered.wait(10)
    (root / "chunks").rename(tmp_path / "chunks-away")
    assert not store.put(_version(b"b"), 0, _chunk(1))  # ENOENT: the store turns pass-through
    assert store.mode == "pass-through"
    go.set()
    thread.join(10)
    assert outcome == [None]

    (tmp_path / "chunks-away").rename(root / "chunks")
    clock.now += 30
    assert store.get(_version(b"a"), 0) == _chunk(0)  # the retry reopens and checks: all there
    assert store.mode == "ok"
    store.close()
    _assert_consistent(root)
