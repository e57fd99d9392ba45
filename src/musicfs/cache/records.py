"""The cache's own SQLite database (`cache.sqlite` in the cache folder); the only cache module that
speaks SQL.

Owns: which chunk (by SHA-256) holds which part of which file version, each chunk's size, its
checksums (`cache/verify.py`) and last use (a logical clock, so clock jumps cannot reorder it), the
migration of older schemas, and the rule for unreadable databases:
like the index, one that fails to open, fails `PRAGMA quick_check` or has another schema is set
aside (renamed, never deleted) and started afresh; the chunk files it described become orphans that
the store's check removes. A separate database from the index, so a dead cache disk never takes the
index with it. Schema 1 (before the checksums) is migrated in place: its chunks get no checksums
(NULL), so the store checks each by its SHA-256 at its first read and records them then.
Opened exclusively (`musicfs.sqlite.connect`): no `-shm` file is mapped from the cache disk, so a
frozen cache disk cannot hold up the exit of the process.
Concurrency: one connection shared by all threads behind one lock; every public method is a single
transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from musicfs.core.types import VersionKey
from musicfs.sqlite import connect, set_aside, transaction

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    checks BLOB  -- verify.checks_of(the bytes); NULL for a chunk of schema 1 not read since
) WITHOUT ROWID;
CREATE INDEX chunks_by_use ON chunks (last_used);
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    origin_id INTEGER NOT NULL,
    relpath BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    UNIQUE (origin_id, relpath, size, mtime_ns, ctime_ns)
);
CREATE TABLE parts (
    version_id INTEGER NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    hash TEXT NOT NULL REFERENCES chunks (hash) ON DELETE CASCADE,
    PRIMARY KEY (version_id, chunk_index)
) WITHOUT ROWID;
CREATE INDEX parts_by_hash ON parts (hash);
"""

_VERSION_MATCH = "origin_id = ? AND relpath = ? AND size = ? AND mtime_ns = ? AND ctime_ns = ?"
_V_MATCH = "v.origin_id = ? AND v.relpath = ? AND v.size = ? AND v.mtime_ns = ? AND v.ctime_ns = ?"


def _values(version: VersionKey) -> tuple[int, bytes, int, int, int]:
    return (version.origin_id, version.relpath, version.size, version.mtime_ns, version.ctime_ns)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the records know of one chunk."""

    digest: str
    size: int
    checks: bytes | None


@dataclass(frozen=True, slots=True)
class Totals:
    bytes: int
    chunks: int
    versions: int


class CacheRecords:
    """The records of one cache folder."""

    def __init__(self, path: Path, chunk_size: int, block_size: int) -> None:
        self.path = path
        self.set_aside = False  # whether opening had to set an unreadable database aside
        self._layout = {"chunk_size": str(chunk_size), "block_size": str(block_size)}
        self._db = self._open()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; safe to call twice."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            finally:
                self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def lookup(self, version: VersionKey, chunk_index: int) -> Recorded | None:
        """The chunk recorded for this part, if any."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT c.hash, c.size, c.checks FROM versions v JOIN parts p ON p.version_id = v.id "
                f"JOIN chunks c ON c.hash = p.hash WHERE {_V_MATCH} AND p.chunk_index = ?",
                (*_values(version), chunk_index),
            ).fetchone()
        return None if row is None else _recorded(row)

    def add(
        self, version: VersionKey, chunk_index: int, digest: str, size: int, checks: bytes, tick: int
    ) -> bool:
        """Record that this part is chunk `digest` (inserting the chunk if new); True if it was new."""
        with self._transaction() as db:
            known = db.execute("SELECT 1 FROM chunks WHERE hash = ?", (digest,)).fetchone() is not None
            db.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE "
                "SET last_used = max(last_used, excluded.last_used), checks = excluded.checks",
                (digest, size, tick, checks),
            )
            _link(db, version, chunk_index, digest)
            return not known

    def share(self, version: VersionKey, chunk_index: int, digest: str, tick: int) -> bool:
        """Record this part as the already stored chunk `digest`; False (nothing done) if it is not."""
        with self._transaction() as db:
            if db.execute(
                "UPDATE chunks SET last_used = max(last_used, ?) WHERE hash = ?", (tick, digest)
            ).rowcount:
                _link(db, version, chunk_index, digest)
                return True
            return False

    def set_checks(self, digest: str, checks: bytes) -> None:
        """Record the checksums of a chunk of schema 1, once its SHA-256 was found right."""
        with self._transaction() as db:
            db.execute("UPDATE chunks SET checks = ? WHERE hash = ?", (checks, digest))

    def touch(self, ticks: Mapping[str, int]) -> None:
        """Store the latest use of each chunk (batched by the store)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE chunks SET last_used = max(last_used, ?) WHERE hash = ?",
                ((tick, digest) for digest, tick in ticks.items()),
            )

    def hashes_of(self, versions: Iterable[VersionKey]) -> set[str]:
        """Every chunk that holds a part of one of these versions."""
        found: set[str] = set()
        with self._transaction() as db:
            for version in versions:
                rows = db.execute(
                    f"SELECT p.hash FROM versions v JOIN parts p ON p.version_id = v.id WHERE {_V_MATCH}",
                    _values(version),
                )
                found.update(str(row[0]) for row in rows)
        return found

    def least_recently_used(
        self, need_bytes: int, need_files: int, keep: Collection[str]
    ) -> list[tuple[str, int]]:
        """The oldest chunks not in `keep` that together free at least the bytes and files asked for
        (all unkept chunks if they do not suffice)."""
        chosen: list[tuple[str, int]] = []
        freed = 0
        with self._transaction() as db:
            for digest, size in db.execute("SELECT hash, size FROM chunks ORDER BY last_used, hash"):
                if freed >= need_bytes and len(chosen) >= need_files:
                    break
                if digest not in keep:
                    chosen.append((str(digest), int(size)))
                    freed += int(size)
        return chosen

    def drop(self, digests: Iterable[str]) -> None:
        """Forget these chunks, the parts they held and versions left without parts."""
        with self._transaction() as db:
            db.executemany("DELETE FROM chunks WHERE hash = ?", ((digest,) for digest in digests))
            _drop_empty_versions(db)

    def chunks(self) -> dict[str, Recorded]:
        """Every chunk recorded, by name."""
        with self._transaction() as db:
            return {
                str(row[0]): _recorded(row) for row in db.execute("SELECT hash, size, checks FROM chunks")
            }

    def unreferenced(self) -> list[str]:
        """Chunks no part uses any more (a file version was re-cached with other bytes)."""
        with self._transaction() as db:
            rows = db.execute("SELECT hash FROM chunks WHERE hash NOT IN (SELECT hash FROM parts)")
            return [str(row[0]) for row in rows]

    def totals(self) -> Totals:
        with self._transaction() as db:
            size, count = db.execute("SELECT coalesce(sum(size), 0), count(*) FROM chunks").fetchone()
            versions = db.execute("SELECT count(*) FROM versions").fetchone()[0]
        return Totals(int(size), int(count), int(versions))

    def last_tick(self) -> int:
        with self._transaction() as db:
            return int(db.execute("SELECT coalesce(max(last_used), 0) FROM chunks").fetchone()[0])

    def quick_check(self) -> bool:
        """Run `PRAGMA quick_check`; if it fails, set the database aside and start afresh (True: ok)."""
        with self._lock:
            try:
                ok = bool(self._db.execute("PRAGMA quick_check").fetchone()[0] == "ok")
            except sqlite3.OperationalError:
                raise  # I/O trouble, not corruption
            except sqlite3.DatabaseError:
                ok = False
            if not ok:
                self._db.close()
                set_aside(self.path, "cache database", "PRAGMA quick_check failed")
                self.set_aside = True
                self._db = self._open_current()
        return ok

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_current()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # cannot open or write at all (missing folder, read-only disk): not corrupt
            set_aside(self.path, "cache database", f"it cannot be read ({exc})")
            self.set_aside = True
            return self._open_current()

    def _open_current(self) -> sqlite3.Connection:
        connection = connect(self.path, exclusive=True)
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 1 and _meta(connection).get("chunk_size") == self._layout["chunk_size"]:
                _migrate_from_1(connection, self._layout["block_size"])
                log.info(
                    "cache database %s migrated from schema 1: chunks are checked by SHA-256 "
                    "at their first read",
                    self.path,
                )
                version = SCHEMA_VERSION
            if version == SCHEMA_VERSION and _meta(connection) == self._layout:
                return connection
            if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0:
                connection.close()
                set_aside(
                    self.path, "cache database", f"it has schema {version} or another chunk or block size"
                )
                self.set_aside = True
                connection = connect(self.path, exclusive=True)
            with connection:
                connection.executescript(_DDL)
                connection.executemany("INSERT INTO meta VALUES (?, ?)", self._layout.items())
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
        return connection


def _recorded(row: tuple[object, ...]) -> Recorded:
    digest, size, checks = row
    return Recorded(str(digest), int(cast(int, size)), None if checks is None else bytes(cast(bytes, checks)))


def _meta(connection: sqlite3.Connection) -> dict[str, str]:
    try:
        return {str(key): str(value) for key, value in connection.execute("SELECT key, value FROM meta")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise


def _migrate_from_1(connection: sqlite3.Connection, block_size: str) -> None:
    """Schema 1 -> 2 in one transaction: chunks get a `checks` column (NULL until read)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute("ALTER TABLE chunks ADD COLUMN checks BLOB")
        connection.execute("INSERT INTO meta VALUES ('block_size', ?)", (block_size,))
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _link(db: sqlite3.Connection, version: VersionKey, chunk_index: int, digest: str) -> None:
    row = db.execute(f"SELECT id FROM versions WHERE {_VERSION_MATCH}", _values(version)).fetchone()
    version_id = (
        row[0]
        if row
        else db.execute(
            "INSERT INTO versions (origin_id, relpath, size, mtime_ns, ctime_ns) VALUES (?, ?, ?, ?, ?)",
            _values(version),
        ).lastrowid
    )
    db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)", (version_id, chunk_index, digest))


def _drop_empty_versions(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM versions WHERE NOT EXISTS (SELECT 1 FROM parts WHERE version_id = versions.id)")
