"""The SQLite schema of the index, its version, and opening a database safely.

Owns: the DDL, `SCHEMA_VERSION` (kept in `PRAGMA user_version`), and the rule for old, newer or
unreadable databases: the index only mirrors the origins, so any index we cannot read exactly is set
aside (renamed, never deleted) and rebuilt by the next scan; it is never misread.
Concurrency: called once, before other threads use the connection.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from musicfs.sqlite import connect, set_aside

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
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
    tags_ok INTEGER NOT NULL,
    artist TEXT, albumartist TEXT, album TEXT, title TEXT, genre TEXT, date TEXT, year INTEGER,
    track INTEGER, tracktotal INTEGER, disc INTEGER, disctotal INTEGER, compilation INTEGER NOT NULL,
    duration REAL,
    viewpath BLOB,
    UNIQUE (origin_id, relpath)
);
CREATE TABLE dirs (inode INTEGER PRIMARY KEY, viewpath BLOB NOT NULL UNIQUE);
"""

FIRST_INODE = 2  # 1 is the root folder


def open_database(path: Path, *, quick_check: bool = False) -> sqlite3.Connection:
    """Open (creating or rebuilding as needed) the index at `path`, in WAL mode.

    With `quick_check` (after an unclean stop) SQLite's quick_check runs first; an index that fails
    it is set aside and rebuilt by the next scan, never served.
    """
    try:
        connection = _open_current(path)
        if quick_check:
            _quick_check(connection)
        return connection
    except sqlite3.OperationalError:
        raise  # the disk failed (full, I/O error, no permission), not the index: nothing to set aside
    except sqlite3.DatabaseError as exc:
        set_aside(path, "index", f"it cannot be read ({exc})")
        return _open_current(path)


def _quick_check(connection: sqlite3.Connection) -> None:
    started = time.monotonic()
    problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        connection.close()
        raise sqlite3.DatabaseError(f"quick_check: {'; '.join(problems[:3])}")
    log.info("index quick_check passed in %.3f s", time.monotonic() - started)


def _open_current(path: Path) -> sqlite3.Connection:
    connection = connect(path)
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return connection
    has_tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if has_tables:
        connection.close()
        set_aside(path, "index", f"it has schema version {version}, this MusicFS uses {SCHEMA_VERSION}")
        connection = connect(path)
    with connection:
        connection.executescript(_DDL)
        connection.execute("INSERT INTO meta VALUES ('next_inode', ?)", (str(FIRST_INODE),))
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection
