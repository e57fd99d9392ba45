"""The chunk store (musicfs.cache): round trips, sharing, eviction, access order across restarts,
and `check` repairing each inconsistency made by hand."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from musicfs.cache.space import DiskSpace, Excess, Watermarks, excess
from musicfs.cache.store import ChunkStore, VersionKey

CHUNK = 1024
BLOCK = 256  # the verification block of these tests: four per chunk
PLENTY = DiskSpace(total_bytes=1 << 40, free_bytes=1 << 39, total_inodes=1 << 30, free_inodes=1 << 29)


def _version(name: bytes = b"a.flac", size: int = 3 * CHUNK, origin: int = 1) -> VersionKey:
    return VersionKey(origin, name, size, 1_000, 2_000)


def _chunk(seed: int, size: int = CHUNK) -> bytes:
    return bytes((seed + i) % 251 for i in range(size))


def _open(root: Path, max_bytes: int = 1 << 30) -> ChunkStore:
    store = ChunkStore(
        root,
        watermarks=Watermarks(max_bytes, target_bytes_fraction=1.0),
        chunk_size=CHUNK,
        block_size=BLOCK,
        disk_space=lambda _path: PLENTY,
    )
    assert store.mode == "ok"
    return store


def _chunk_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "chunks").rglob("*") if path.is_file())


def test_put_get_round_trip_and_last_short_chunk(tmp_path: Path) -> None:
    version = _version(size=2 * CHUNK + 10)
    store = _open(tmp_path)
    assert store.get(version, 0) is None
    assert store.put(version, 0, _chunk(0))
    assert store.put(version, 2, _chunk(2, 10))
    assert store.get(version, 0) == _chunk(0)
    assert store.get(version, 0) == _chunk(0)
    assert store.get(version, 2) == _chunk(2, 10)
    assert store.get(version, 1) is None
    assert store.get(_version(size=2 * CHUNK + 11), 0) is None  # another version of the file
    store.close()
    reopened = _open(tmp_path)
    assert reopened.get(version, 2) == _chunk(2, 10)
    usage = reopened.usage()
    assert (usage.bytes, usage.chunks, usage.versions, usage.mode) == (CHUNK + 10, 2, 1, "ok")
    reopened.close()


def test_chunks_are_named_by_their_hash_and_nothing_is_left_in_tmp(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 1, _chunk(7))
    digest = hashlib.sha256(_chunk(7)).hexdigest()
    assert _chunk_files(tmp_path) == [tmp_path / "chunks" / digest[:2] / digest]
    assert list((tmp_path / "tmp").iterdir()) == []
    store.close()


def test_wrong_length_or_index_is_not_cached(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert not store.put(_version(), 0, _chunk(0, CHUNK - 1))
    assert not store.put(_version(), 3, _chunk(0))  # past the end
    assert not store.put(_version(), -1, _chunk(0))
    assert _chunk_files(tmp_path) == []
    store.close()


def test_identical_chunks_of_different_files_share_one_file(tmp_path: Path) -> None:
    first, second = _version(b"a.flac"), _version(b"b.flac", origin=2)
    store = _open(tmp_path)
    assert store.put(first, 0, _chunk(5))
    assert store.put(second, 1, _chunk(5))
    assert len(_chunk_files(tmp_path)) == 1
    assert store.get(first, 0) == store.get(second, 1) == _chunk(5)
    usage = store.usage()
    assert (usage.bytes, usage.chunks, usage.versions) == (CHUNK, 1, 2)
    store.close()


def test_eviction_is_least_recently_used_first(tmp_path: Path) -> None:
    store = _open(tmp_path, max_bytes=3 * CHUNK)
    versions = [_version(f"{n}.flac".encode(), size=CHUNK) for n in range(4)]
    for n in range(3):
        assert store.put(versions[n], 0, _chunk(n))
    assert store.get(versions[0], 0) is not None  # 1 is now the least recently used
    assert store.put(versions[3], 0, _chunk(3))
    assert store.get(versions[1], 0) is None
    assert [store.get(versions[n], 0) for n in (0, 2, 3)] == [_chunk(0), _chunk(2), _chunk(3)]
    assert store.usage().evictions == 1
    store.close()


def test_pinned_versions_are_never_evicted_and_a_full_cache_caches_nothing(tmp_path: Path) -> None:
    store = _open(tmp_path, max_bytes=2 * CHUNK)
    old, playing, new = (_version(name, size=CHUNK) for name in (b"old", b"playing", b"new"))
    assert store.put(old, 0, _chunk(0))
    assert store.put(playing, 0, _chunk(1))
    with store.reading(old), store.reading(playing):
        assert not store.put(new, 0, _chunk(2))  # no room without evicting a pinned chunk
        assert store.usage().not_cached_full == 1
    assert store.evict_if_needed(pinned=[old], incoming=CHUNK) == 1
    assert store.get(old, 0) == _chunk(0)
    assert store.get(playing, 0) is None
    with store.reading(old):
        assert store.put(new, 0, _chunk(2))
    assert store.get(old, 0) == _chunk(0)
    store.close()


def test_access_order_survives_a_restart(tmp_path: Path) -> None:
    versions = [_version(f"{n}.flac".encode(), size=CHUNK) for n in range(3)]
    store = _open(tmp_path, max_bytes=3 * CHUNK)
    for n in range(3):
        assert store.put(versions[n], 0, _chunk(n))
    assert store.get(versions[0], 0) is not None  # batched in memory, written by close
    assert store.get(versions[1], 0) is not None
    store.close()
    reopened = _open(tmp_path, max_bytes=3 * CHUNK)
    assert reopened.put(_version(b"new", size=CHUNK), 0, _chunk(9))
    assert reopened.get(versions[2], 0) is None  # the least recently used before the restart
    assert reopened.get(versions[0], 0) == _chunk(0)
    assert reopened.get(versions[1], 0) == _chunk(1)
    reopened.close()


def test_watermarks_on_free_bytes_and_inodes() -> None:
    marks = Watermarks(
        max_bytes=1000, target_bytes_fraction=0.5, min_free_fraction=0.1, target_free_fraction=0.2
    )
    roomy = DiskSpace(10_000, 5_000, 100, 50)
    assert not excess(marks, 900, roomy, incoming=100)
    assert excess(marks, 900, roomy, incoming=101) == Excess(bytes=501, files=0)
    low_on_bytes = DiskSpace(10_000, 1_050, 100, 50)
    assert excess(marks, 0, low_on_bytes, incoming=100) == Excess(bytes=1_050, files=0)
    low_on_inodes = DiskSpace(10_000, 5_000, 100, 10)
    assert excess(marks, 0, low_on_inodes, incoming=1) == Excess(bytes=0, files=11)
    with pytest.raises(ValueError):
        Watermarks(100, min_free_fraction=0.3, target_free_fraction=0.2)


def test_check_of_a_consistent_store_repairs_nothing(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    report = store.check(full=True)
    assert report.repairs == 0
    assert report.verified == 1
    store.close()


def test_check_removes_stray_temp_files(tmp_path: Path) -> None:
    store = _open(tmp_path)
    (tmp_path / "tmp" / "0123.part").write_bytes(b"half a chunk")
    report = store.check()
    assert report.stray_temp_removed == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    store.close()


def test_check_removes_orphan_files(tmp_path: Path) -> None:
    store = _open(tmp_path)
    digest = hashlib.sha256(b"orphan").hexdigest()
    (tmp_path / "chunks" / digest[:2]).mkdir()
    (tmp_path / "chunks" / digest[:2] / digest).write_bytes(b"orphan")
    (tmp_path / "chunks" / "not-a-chunk").write_bytes(b"?")
    report = store.check()
    assert report.orphan_files_removed == 2
    assert _chunk_files(tmp_path) == []
    store.close()


def test_check_forgets_records_whose_file_is_missing(tmp_path: Path) -> None:
    version = _version()
    store = _open(tmp_path)
    assert store.put(version, 0, _chunk(0))
    assert store.put(version, 1, _chunk(1))
    _chunk_files(tmp_path)[0].unlink()
    report = store.check()
    assert report.missing_files_forgotten == 1
    assert store.usage().chunks == 1
    assert [store.get(version, 0) is None, store.get(version, 1) is None].count(True) == 1
    store.close()


@pytest.mark.allow_log(r"cached chunk \w+ vanished; forgetting it")
def test_a_get_of_a_vanished_chunk_file_is_a_miss_and_forgets_it(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    _chunk_files(tmp_path)[0].unlink()
    assert store.get(_version(), 0) is None
    assert store.usage().chunks == 0
    assert store.mode == "ok"
    store.close()


def _flip_a_bit(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def _chunk_file(root: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return root / "chunks" / digest[:2] / digest


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_every_read_is_verified_also_after_a_clean_stop(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    store.close()
    _flip_a_bit(_chunk_files(tmp_path)[0])
    reopened = _open(tmp_path)
    assert not reopened.unclean
    assert reopened.get(_version(), 0) is None
    assert reopened.usage().quarantined == 1
    reopened.close()


def test_a_part_of_a_chunk_is_read_and_verified_by_its_blocks(tmp_path: Path) -> None:
    version = _version(size=2 * CHUNK + 10)
    store = _open(tmp_path)
    assert store.put(version, 0, _chunk(0))
    assert store.put(version, 2, _chunk(2, 10))
    for start, end in ((0, 1), (5, 300), (255, 257), (BLOCK, 2 * BLOCK), (700, CHUNK), (0, CHUNK)):
        assert store.read(version, 0, start, end) == _chunk(0)[start:end]
    assert store.read(version, 2, 3, 10) == _chunk(2, 10)[3:10]
    assert store.read(version, 1, 0, 10) is None
    store.close()


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_a_bit_flip_in_one_block_is_caught_by_a_read_of_that_block(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    _flip_a_bit(_chunk_file(tmp_path, _chunk(0)), offset=3 * BLOCK + 7)
    assert store.read(_version(), 0, 0, 3 * BLOCK) == _chunk(0)[: 3 * BLOCK]  # its intact blocks
    assert store.read(_version(), 0, 3 * BLOCK + 100, 3 * BLOCK + 104) is None
    assert store.get(_version(), 0) is None  # quarantined: no part of it is served any more
    assert store.read(_version(), 0, 0, 10) is None
    assert store.usage().quarantined == 1
    store.close()


# The chunk index as the first release wrote it (schema 1: chunks verified by their SHA-256 name only).
_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, last_used INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX chunks_by_use ON chunks (last_used);
CREATE TABLE versions (id INTEGER PRIMARY KEY, origin_id INTEGER NOT NULL, relpath BLOB NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    UNIQUE (origin_id, relpath, size, mtime_ns, ctime_ns));
CREATE TABLE parts (version_id INTEGER NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL, hash TEXT NOT NULL REFERENCES chunks (hash) ON DELETE CASCADE,
    PRIMARY KEY (version_id, chunk_index)) WITHOUT ROWID;
CREATE INDEX parts_by_hash ON parts (hash);
"""


def _schema_1_cache(root: Path, chunks: dict[int, bytes]) -> None:
    """A cache folder as schema 1 left it, closed cleanly: `chunks` as the parts of `_version()`."""
    for folder in ("chunks", "tmp", "quarantine"):
        (root / folder).mkdir(parents=True)
    with closing(sqlite3.connect(root / "cache.sqlite")) as db, db:
        db.executescript(_SCHEMA_1)
        db.execute("INSERT INTO meta VALUES ('chunk_size', ?)", (str(CHUNK),))
        db.execute("INSERT INTO versions VALUES (1, 1, ?, ?, 1000, 2000)", (b"a.flac", 3 * CHUNK))
        for index, data in chunks.items():
            path = _chunk_file(root, data)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            db.execute("INSERT INTO chunks VALUES (?, ?, ?)", (path.name, len(data), index))
            db.execute("INSERT INTO parts VALUES (1, ?, ?)", (index, path.name))
        db.execute("PRAGMA user_version = 1")


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_a_schema_1_cache_is_kept_and_each_chunk_checked_by_its_sha256_at_its_first_read(
    tmp_path: Path,
) -> None:
    _schema_1_cache(tmp_path, {0: _chunk(0), 1: _chunk(1), 2: _chunk(2)})
    _flip_a_bit(_chunk_file(tmp_path, _chunk(1)))
    store = _open(tmp_path)
    report = store.check()
    assert not report.database_set_aside and report.orphan_files_removed == 0
    assert store.read(_version(), 0, 10, 20) == _chunk(0)[10:20]
    assert store.get(_version(), 1) is None  # its SHA-256 no longer matches: quarantined
    assert store.get(_version(), 2) == _chunk(2)
    assert store.usage().quarantined == 1
    store.close()
    _flip_a_bit(_chunk_file(tmp_path, _chunk(2)), offset=5)  # caught by the checks recorded at its read
    reopened = _open(tmp_path)
    assert reopened.get(_version(), 0) == _chunk(0)
    assert reopened.get(_version(), 2) is None
    reopened.close()


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_a_bit_flip_is_detected_quarantined_and_never_returned(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    [path] = _chunk_files(tmp_path)
    _flip_a_bit(path)
    assert store.get(_version(), 0) is None
    assert store.get(_version(), 0) is None  # forgotten, not only skipped once
    assert [p.name.split("-")[1] for p in (tmp_path / "quarantine").iterdir()] == [path.name]
    assert store.usage().quarantined == 1
    assert store.put(_version(), 0, _chunk(0))  # read again from the origin and cached again
    assert store.get(_version(), 0) == _chunk(0)
    store.close()


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_a_full_check_quarantines_a_bit_flip(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    assert store.put(_version(), 1, _chunk(1))
    _flip_a_bit(_chunk_files(tmp_path)[0])
    report = store.check(full=True)
    assert (report.verified, report.corrupt_quarantined) == (2, 1)
    assert store.usage().chunks == 1
    store.close()


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_scrub_quarantines_a_bit_flip_found_at_random(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    assert store.put(_version(), 1, _chunk(1))
    _flip_a_bit(_chunk_files(tmp_path)[0])
    assert store.scrub(10) == (2, 1)  # every chunk is in a sample of 10
    assert store.usage().chunks == 1 and store.usage().quarantined == 1
    assert store.scrub(10) == (1, 0)
    store.close()


@pytest.mark.allow_log(r"failed verification; quarantined")
def test_after_an_unclean_shutdown_every_read_is_verified(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    store.close()
    (tmp_path / "in-use").touch()  # what a crash leaves behind
    _flip_a_bit(_chunk_files(tmp_path)[0])
    reopened = _open(tmp_path)
    assert reopened.unclean
    assert reopened.get(_version(), 0) is None
    assert reopened.usage().quarantined == 1
    reopened.close()
    assert not (tmp_path / "in-use").exists()
    assert not _open(tmp_path).unclean


def test_a_rewritten_version_leaves_an_unreferenced_chunk_that_check_removes(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    assert store.put(_version(), 0, _chunk(1))  # the same part again, with other bytes
    assert store.get(_version(), 0) == _chunk(1)
    report = store.check()
    assert report.unreferenced_removed == 1
    assert len(_chunk_files(tmp_path)) == 1
    store.close()


@pytest.mark.allow_log(r"cache database .* set aside: it cannot be read")
def test_an_unreadable_database_is_set_aside_and_its_chunks_removed(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    store.close()
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    reopened = _open(tmp_path)
    report = reopened.check()
    assert report.database_set_aside
    assert report.orphan_files_removed == 1
    assert reopened.get(_version(), 0) is None
    assert any(path.name.startswith("cache.sqlite.old-") for path in tmp_path.iterdir())
    reopened.close()


@pytest.mark.allow_log(r"cache database .* set aside: it has schema")
def test_another_chunk_size_starts_afresh(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.put(_version(), 0, _chunk(0))
    store.close()
    other = ChunkStore(tmp_path, watermarks=Watermarks(1 << 30), chunk_size=2 * CHUNK)
    assert other.check().database_set_aside
    assert other.get(_version(), 0) is None
    other.close()
    with closing(sqlite3.connect(tmp_path / "cache.sqlite")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'chunk_size'").fetchone() == (str(2 * CHUNK),)
