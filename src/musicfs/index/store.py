"""Queries and updates of the index; the only module that speaks SQL.

Owns: reading and writing rows of `files`, `dirs`, `origins` and `meta`, and the allocation of inode
numbers from one monotonic counter, so a number is never handed out twice, not even after the file
it named is gone (the kernel may still hold it).
Concurrency: one connection shared by all threads behind one lock; every public method is a single
transaction, so a writer that dies halfway leaves the index as it was before the call.
"""

from __future__ import annotations

import dataclasses
import operator
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from musicfs.core.types import EmbeddedPicture, TagSet, ViewFile
from musicfs.index.schema import open_database
from musicfs.sqlite import transaction

_TAG_COLUMNS = tuple(field.name for field in dataclasses.fields(TagSet))
_VERSION_COLUMNS = ("size", "mtime_ns", "ctime_ns", "dev", "ino", "linked")


@dataclass(frozen=True, slots=True)
class FileVersion:
    """What identifies the version of a file the index knows: it changed if any field differs.

    ctime and inode catch taggers that restore the mtime after writing; `linked` (the path goes through
    a symlink; dev and ino are the file's it leads to) decides which of several paths to one file is
    shown, so a change of it counts too.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    linked: bool = False


@dataclass(frozen=True, slots=True)
class StoredFile:
    inode: int
    relpath: bytes
    version: FileVersion


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to insert or update: where it is, its version, its kind and (for audio) its tags and
    embedded front cover."""

    relpath: bytes
    kind: str
    version: FileVersion
    tags: TagSet | None  # None: audio whose tags could not be read, or a cover image
    picture: EmbeddedPicture | None = None


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """A row as the layout needs it: `dev`, `ino` and `linked` tell paths of one file apart."""

    inode: int
    origin_id: int
    relpath: bytes
    kind: str
    tags: TagSet | None
    dev: int = 0
    ino: int = 0
    linked: bool = False


class Index:
    """The index database of one state directory."""

    def __init__(self, path: Path, *, deep_check: bool = False) -> None:
        self.path = path
        self._db = open_database(path, deep_check=deep_check)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; safe to call twice."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def origin_id(self, path: bytes) -> int:
        """The id of the origin at `path`, registering it on first sight."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM origins WHERE path = ?", (path,)).fetchone()
            if row:
                return int(row[0])
            return int(db.execute("INSERT INTO origins (path) VALUES (?)", (path,)).lastrowid or 0)

    def get_meta(self, key: str) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def count_files(self, origin_id: int) -> int:
        with self._transaction() as db:
            return int(
                db.execute("SELECT count(*) FROM files WHERE origin_id = ?", (origin_id,)).fetchone()[0]
            )

    def stored_files(self, origin_id: int) -> dict[bytes, StoredFile]:
        """Every file of an origin the index knows, by relative path."""
        columns = ", ".join(_VERSION_COLUMNS)
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT inode, relpath, {columns} FROM files WHERE origin_id = ?", (origin_id,)
            )
            return {row[1]: StoredFile(row[0], row[1], _version(row[2:])) for row in rows}

    def apply(
        self,
        origin_id: int,
        added: Iterable[NewFile] = (),
        changed: Mapping[int, NewFile] | None = None,
        removed: Iterable[int] = (),
    ) -> None:
        """Insert new files, update changed or moved ones (keeping their inode), delete removed ones.

        All in one transaction, which also marks the stored layout out of date.
        """
        with self._transaction() as db:
            for inode, new in (changed or {}).items():
                db.execute(f"UPDATE files SET {_assignments()} WHERE inode = ?", (*_file_values(new), inode))
            db.executemany("DELETE FROM files WHERE inode = ?", ((inode,) for inode in removed))
            added = list(added)
            first = _allocate(db, len(added))
            db.executemany(
                f"INSERT INTO files (inode, origin_id, {', '.join(_FILE_COLUMNS)}, viewpath) "
                f"VALUES (?, ?, {', '.join('?' * len(_FILE_COLUMNS))}, NULL)",
                ((first + offset, origin_id, *_file_values(new)) for offset, new in enumerate(added)),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('layout_key', '')")

    def indexed_files(self, origin_ids: Iterable[int]) -> list[IndexedFile]:
        """Every file of the given origins, with tags, for a new layout."""
        ids = tuple(origin_ids)
        columns = ", ".join(_TAG_COLUMNS)
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT inode, origin_id, relpath, kind, dev, ino, linked, tags_ok, {columns} FROM files "
                f"WHERE origin_id IN ({', '.join('?' * len(ids))})",
                ids,
            ).fetchall()
        return [
            IndexedFile(
                row[0],
                row[1],
                row[2],
                row[3],
                _tags(row[8:]) if row[7] else None,
                row[4],
                row[5],
                bool(row[6]),
            )
            for row in rows
        ]

    def save_layout(self, viewpaths: Mapping[int, bytes | None], folders: Iterable[bytes], key: str) -> None:
        """Store where each file is shown (None: not shown) and make sure every folder has an inode.

        Folders keep their inode while they exist; folders no longer used are forgotten.
        """
        with self._transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS new_view (inode INTEGER PRIMARY KEY, viewpath BLOB)")
            db.execute("DELETE FROM new_view")
            db.executemany("INSERT INTO new_view VALUES (?, ?)", viewpaths.items())
            db.execute(
                "UPDATE files SET viewpath = new.viewpath FROM new_view AS new "
                "WHERE new.inode = files.inode AND files.viewpath IS NOT new.viewpath"
            )
            db.execute("DELETE FROM new_view")
            wanted = set(folders)
            known = dict(db.execute("SELECT viewpath, inode FROM dirs"))
            db.executemany("DELETE FROM dirs WHERE viewpath = ?", ((p,) for p in known.keys() - wanted))
            fresh = sorted(wanted - known.keys())
            first = _allocate(db, len(fresh))
            db.executemany("INSERT INTO dirs VALUES (?, ?)", ((first + i, p) for i, p in enumerate(fresh)))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('layout_key', ?)", (key,))

    def pictures(self, origin_ids: Iterable[int]) -> dict[int, EmbeddedPicture]:
        """The embedded front covers of the shown tracks of the given origins, by inode."""
        ids = tuple(origin_ids)
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT inode, {', '.join(_PICTURE_COLUMNS)} FROM files WHERE viewpath IS NOT NULL "
                f"AND picture_size IS NOT NULL AND origin_id IN ({', '.join('?' * len(ids))})",
                ids,
            )
            return {row[0]: EmbeddedPicture(*row[1:]) for row in rows}

    def view(self, origin_ids: Iterable[int]) -> tuple[list[ViewFile], dict[bytes, int]]:
        """The shown files of the given origins and the inode of every folder, for a tree snapshot."""
        ids = tuple(origin_ids)
        with self._transaction() as db:
            files = [
                ViewFile(*row)
                for row in db.execute(
                    "SELECT inode, viewpath, origin_id, relpath, size, mtime_ns, ctime_ns, kind FROM files "
                    f"WHERE viewpath IS NOT NULL AND origin_id IN ({', '.join('?' * len(ids))})",
                    ids,
                )
            ]
            folders = dict(db.execute("SELECT viewpath, inode FROM dirs"))
        return files, folders


_PICTURE_COLUMNS = ("picture_offset", "picture_size", "picture_ext")
_FILE_COLUMNS = ("relpath", "kind", *_VERSION_COLUMNS, "tags_ok", *_TAG_COLUMNS, *_PICTURE_COLUMNS)


def _assignments() -> str:
    return ", ".join(f"{column} = ?" for column in _FILE_COLUMNS) + ", viewpath = NULL"


_version_values = operator.attrgetter(*_VERSION_COLUMNS)
_tag_values = operator.attrgetter(*_TAG_COLUMNS)
_NO_TAGS = TagSet()
_NO_PICTURE = (None, None, None)


def _file_values(new: NewFile) -> tuple[object, ...]:
    # attrgetter, not dataclasses.astuple: astuple deep-copies every value and cost most of the
    # time of index writes in a first scan (bench/startup.py).
    tags = new.tags or _NO_TAGS
    picture = _NO_PICTURE if new.picture is None else (new.picture.offset, new.picture.size, new.picture.ext)
    return (
        new.relpath,
        new.kind,
        *_version_values(new.version),
        new.tags is not None,
        *_tag_values(tags),
        *picture,
    )


def _version(values: tuple[int, ...]) -> FileVersion:
    size, mtime_ns, ctime_ns, dev, ino, linked = values
    return FileVersion(size, mtime_ns, ctime_ns, dev, ino, bool(linked))


def _tags(values: tuple[object, ...]) -> TagSet:
    fields = dict(zip(_TAG_COLUMNS, values, strict=True))
    fields["compilation"] = bool(fields["compilation"])
    return TagSet(**fields)  # type: ignore[arg-type]


def _allocate(db: sqlite3.Connection, count: int) -> int:
    """Reserve `count` inode numbers inside the caller's transaction; return the first."""
    first = int(db.execute("SELECT value FROM meta WHERE key = 'next_inode'").fetchone()[0])
    db.execute("UPDATE meta SET value = ? WHERE key = 'next_inode'", (str(first + count),))
    return first
