"""What the index and the cache records share about SQLite: opening in WAL mode, transactions, and
setting aside a database that cannot be trusted.

Owns: `connect` (optionally without a shared-memory file), `transaction` and `set_aside`. A database
set aside is renamed (with its -wal and -shm files), never deleted, so nothing is lost if the
decision was wrong.
Concurrency: `transaction` holds the caller's lock for the whole transaction, so one connection can
be shared by threads; `connect` and `set_aside` run where the caller opens its database.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def connect(path: Path, *, exclusive: bool = False) -> sqlite3.Connection:
    """Open `path` in WAL mode with foreign keys on; raises sqlite3.DatabaseError if it is unreadable.

    `exclusive`: no other connection may open the database while this one is open, and the WAL
    index lives in this process's memory instead of a `-shm` file mapped into it. A mapped file on a
    disk that stops answering (a frozen FUSE or NFS mount) keeps the process from ever exiting: the
    kernel writes its dirty pages back when the mapping goes, and waits for that uninterruptibly.
    """
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        if exclusive:
            connection.execute("PRAGMA locking_mode = EXCLUSIVE")  # before WAL mode: then no -shm
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def transaction(db: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One write transaction under `lock`: committed at the end, rolled back on any exception."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def set_aside(path: Path, what: str, why: str) -> None:
    """Rename the database at `path` (and its WAL files) to `path.old-STAMP`, logging why."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log.warning("%s %s set aside: %s", what, path, why)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{path}.old-{stamp}{suffix}"))
