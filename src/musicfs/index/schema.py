"""The SQLite schema of the index, its version, and opening a database safely.

Owns: the DDL, `SCHEMA_VERSION` (kept in `PRAGMA user_version`), the migrations from older versions,
and the rule for other, unreadable or damaged databases: the index only mirrors the origins, so any
index we cannot read exactly is set aside (renamed, never deleted) and rebuilt by the next scan; it is
never misread. A migration adds what a version added and marks every file's version unknown, so the
next scan reads every file's tags again (filling the new columns) while files keep their inodes and
the view stays served meanwhile.
Concurrency: called once, before other threads use the connection.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from musicfs.sqlite import connect, set_aside

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
INDEX_NAME = "index.sqlite"  # the index file in a state directory

_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE origins (id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE);
CREATE TABLE files (
    inode INTEGER PRIMARY KEY,
    origin_id INTEGER NOT NULL REFERENCES origins(id),
    relpath BLOB NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    linked INTEGER NOT NULL DEFAULT 0,
    tags_ok INTEGER NOT NULL,
    artist TEXT, albumartist TEXT, album TEXT, title TEXT, genre TEXT, date TEXT, year INTEGER,
    track INTEGER, tracktotal INTEGER, disc INTEGER, disctotal INTEGER, compilation INTEGER NOT NULL,
    duration REAL, mb_albumid TEXT,
    picture_offset INTEGER, picture_size INTEGER, picture_ext TEXT,
    viewpath BLOB,
    UNIQUE (origin_id, relpath)
);
CREATE TABLE dirs (inode INTEGER PRIMARY KEY, viewpath BLOB NOT NULL UNIQUE);
"""

# version -> the statements that bring an index of that version to the next one
_MIGRATIONS = {
    1: """
ALTER TABLE files ADD COLUMN linked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN mb_albumid TEXT;
ALTER TABLE files ADD COLUMN picture_offset INTEGER;
ALTER TABLE files ADD COLUMN picture_size INTEGER;
ALTER TABLE files ADD COLUMN picture_ext TEXT;
""",
    2: "",  # no new column: Vorbis comment pictures are offered now, so every file is read again
}
_RESCAN_ALL = "UPDATE files SET dev = -1"  # no device has that number: every file is read again (dev
# is not shown, so the view served until then keeps its sizes and times)

FIRST_INODE = 2  # 1 is the root folder


def open_database(path: Path, *, deep_check: bool = False) -> sqlite3.Connection:
    """Open (creating or rebuilding as needed) the index at `path`, in WAL mode, checked first.

    Every open runs SQLite's quick_check, `deep_check` (after an unclean stop) its integrity_check:
    an index that fails is set aside and rebuilt by the next scan, never served (2.4). The cost was
    measured on a 100,000-track index (28 MiB): quick_check 0.05 s with the file in the page cache,
    1.0 s cold (reading the file, which the load of the tree does next anyway); integrity_check 0.28 s
    warm, 1.2 s cold. quick_check finds flipped bytes in the middle of the file (40 of 40 tries);
    integrity_check also checks that the indexes agree with the tables.
    """
    try:
        connection = _open_current(path)
        _check(connection, "integrity_check" if deep_check else "quick_check")
        return connection
    except sqlite3.OperationalError:
        raise  # the disk failed (full, I/O error, no permission), not the index: nothing to set aside
    except sqlite3.DatabaseError as exc:
        set_aside(path, "index", f"it is damaged ({exc})")
        return _open_current(path)


def _check(connection: sqlite3.Connection, pragma: str) -> None:
    started = time.monotonic()
    try:
        problems = [row[0] for row in connection.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError:
        connection.close()
        raise
    if problems != ["ok"]:
        connection.close()
        raise sqlite3.DatabaseError(f"{pragma}: {'; '.join(problems[:3])}")
    level = logging.DEBUG if pragma == "quick_check" else logging.INFO  # the routine one is not news
    log.log(level, "index %s passed in %.3f s", pragma, time.monotonic() - started)


def _open_current(path: Path) -> sqlite3.Connection:
    connection = connect(path)
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return connection
    has_tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if has_tables and version in _MIGRATIONS:
        _migrate(connection, version)
        return connection
    if has_tables:
        connection.close()
        set_aside(path, "index", f"it has schema version {version}, this MusicFS uses {SCHEMA_VERSION}")
        connection = connect(path)
    with connection:
        connection.executescript(_DDL)
        connection.execute("INSERT INTO meta VALUES ('next_inode', ?)", (str(FIRST_INODE),))
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    """Bring an index of an older `version` up to `SCHEMA_VERSION` in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version, SCHEMA_VERSION):
            for statement in filter(str.strip, _MIGRATIONS[step].split(";")):
                connection.execute(statement)
        connection.execute(_RESCAN_ALL)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    log.info(
        "index migrated from schema version %d to %d; the next scan reads every file again",
        version,
        SCHEMA_VERSION,
    )
