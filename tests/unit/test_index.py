"""The index and the scanner against a real (copied) demo library: change detection, stable inodes,
and the rule that a vanished origin never empties the index."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from io import BufferedReader
from pathlib import Path

import mutagen
import pytest

from musicfs.core.config import build_config
from musicfs.core.errors import OriginUnavailable
from musicfs.index.scanner import scan_origin
from musicfs.index.schema import SCHEMA_VERSION
from musicfs.index.store import FileVersion, Index, NewFile
from musicfs.library import Library
from musicfs.origins.base import WalkProblems
from musicfs.origins.local import LocalOrigin
from musicfs.tags import read_tags


def _index(tmp_path: Path) -> Index:
    return Index(tmp_path / "index.sqlite")


def _origin(index: Index, root: Path) -> LocalOrigin:
    return LocalOrigin(index.origin_id(os.fsencode(root)), os.fsencode(root))


def test_first_scan_indexes_audio_and_covers_only(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    report = scan_origin(index, _origin(index, library_copy))
    stored = index.stored_files(1)
    assert report.added == len(stored) == report.found
    assert b"Downloads/misc/caf\xe9.flac" in stored  # not UTF-8, kept as bytes
    assert not any(path.endswith(b".txt") for path in stored)
    assert any(path.endswith(b"cover.png") for path in stored)
    assert report.bad_tags == 1  # the corrupt mp3


def test_unchanged_rescan_changes_nothing(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    again = scan_origin(index, origin)
    assert again.changes == 0 and again.found > 0


def test_retag_that_restores_mtime_is_detected_and_keeps_inode(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    track = library_copy / "Music/Sigur Rós/Ágætis byrjun/track1.ogg"
    before = index.stored_files(1)[os.fsencode(track.relative_to(library_copy))]
    stat = track.stat()
    audio = mutagen.File(track)
    audio["title"] = "Renamed by a tagger"
    audio.save()
    os.utime(track, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # taggers that keep the mtime
    report = scan_origin(index, origin)
    assert report.changed == 1
    after = index.stored_files(1)[before.relpath]
    assert after.inode == before.inode


def test_moved_file_keeps_its_inode(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    old = "Music/Sigur Rós/Ágætis byrjun/track2.ogg".encode()
    inode = index.stored_files(1)[old].inode
    (library_copy / "moved").mkdir()
    os.rename(os.path.join(os.fsencode(library_copy), old), library_copy / "moved" / "t2.ogg")
    report = scan_origin(index, origin)
    assert (report.moved, report.removed, report.added) == (1, 0, 0)
    assert index.stored_files(1)[b"moved/t2.ogg"].inode == inode


def test_removed_file_is_removed(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    (library_copy / "Music/Sigur Rós/demos/untitled 1.opus").unlink()
    assert scan_origin(index, origin).removed == 1


@pytest.mark.allow_log(r"unavailable \(its folder is empty but the index knows files")
@pytest.mark.failure_mode("origin-vanished")
def test_emptied_origin_is_unavailable_not_deleted(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    known = len(index.stored_files(1))
    for child in library_copy.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    report = scan_origin(index, origin)
    assert report.unavailable and report.removed == 0
    assert len(index.stored_files(1)) == known


@pytest.mark.allow_log(r"unavailable \(.*No such file or directory\); known files kept")
@pytest.mark.failure_mode("origin-vanished")
def test_missing_origin_is_unavailable_not_deleted(library_copy: Path, tmp_path: Path) -> None:
    index = _index(tmp_path)
    origin = _origin(index, library_copy)
    scan_origin(index, origin)
    known = len(index.stored_files(1))
    library_copy.rename(tmp_path / "away")
    report = scan_origin(index, origin)
    assert report.unavailable
    assert len(index.stored_files(1)) == known


@pytest.mark.allow_log(r"a symlink loop")
def test_symlink_loop_is_skipped(library_copy: Path, tmp_path: Path) -> None:
    (library_copy / "Music" / "loop").symlink_to("..")
    index = _index(tmp_path)
    report = scan_origin(index, _origin(index, library_copy))
    assert report.found == len(index.stored_files(1)) > 0
    assert not any(b"loop/" in path for path in index.stored_files(1))


@pytest.mark.allow_log(r"index .* set aside: it has schema version")
def test_index_of_another_schema_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE files (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    index = Index(path)
    assert index.stored_files(index.origin_id(b"/m")) == {}
    index.close()
    assert list(tmp_path.glob("index.sqlite.old-*"))


@pytest.mark.allow_log(r"index .* set aside: it is damaged")
def test_unreadable_index_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    index = Index(path)
    assert index.origin_id(b"/m") == 1
    index.close()
    assert list(tmp_path.glob("index.sqlite.old-*"))


def test_library_keeps_inodes_across_restarts(library_copy: Path, tmp_path: Path) -> None:
    config = build_config({}, {"origin": [str(library_copy)], "state_dir": str(tmp_path)})
    first = Library(config, _index(tmp_path))
    first.rescan()
    paths = {first.tree.path_of(node): inode for inode, node in _files(first)}
    first.index.close()
    second = Library(config, _index(tmp_path))
    tree = second.load()
    assert tree.file_count == len(paths) > 20
    assert {second.tree.path_of(node): inode for inode, node in _files(second)} == paths


def _files(library: Library) -> list[tuple[int, object]]:
    tree = library.tree
    found = []
    pending = [tree.get(1)]
    while pending:
        node = pending.pop()
        assert node is not None
        for child in tree.children_after(node, 0):
            if child.is_dir:
                pending.append(child)
            else:
                found.append((child.inode, child))
    return found


@pytest.mark.allow_log(r"index .* set aside: it is damaged")
@pytest.mark.failure_mode("2.4")
def test_index_failing_its_deep_check_after_a_crash_is_set_aside(library_copy: Path, tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    index = Index(path)
    scan_origin(index, _origin(index, library_copy))
    index.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    for page in range(1, len(data) // 4096):  # damage every b-tree page header, keep the file header
        for offset in range(page * 4096, page * 4096 + 12):
            data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    reopened = Index(path, deep_check=True)
    assert reopened.stored_files(reopened.origin_id(os.fsencode(library_copy))) == {}  # rebuilt, empty
    reopened.close()
    assert list(tmp_path.glob("index.sqlite.old-*"))


@pytest.mark.allow_log(r"index .* set aside: it is damaged")
@pytest.mark.failure_mode("2.4")
def test_index_with_bytes_flipped_after_a_clean_close_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "index.sqlite"
    index = Index(path)
    origin_id = index.origin_id(b"/srv/music")
    rows = [
        NewFile(
            f"Artist {n % 40}/Album {n % 300}/{n:05d}.flac".encode(),
            "audio",
            FileVersion(n, n, n, 1, n),
            None,
        )
        for n in range(3000)
    ]
    index.apply(origin_id, added=rows)
    index.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(byte ^ 0xFF for byte in data[middle : middle + 200])
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        reopened = Index(path)  # after a clean stop too: the quick check runs at every open
    assert reopened.stored_files(reopened.origin_id(b"/srv/music")) == {}  # rebuilt, empty
    reopened.close()
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "set aside" in caplog.text
    assert list(tmp_path.glob("index.sqlite.old-*"))


_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE origins (id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE);
CREATE TABLE files (
    inode INTEGER PRIMARY KEY, origin_id INTEGER NOT NULL REFERENCES origins(id), relpath BLOB NOT NULL,
    kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, tags_ok INTEGER NOT NULL,
    artist TEXT, albumartist TEXT, album TEXT, title TEXT, genre TEXT, date TEXT, year INTEGER,
    track INTEGER, tracktotal INTEGER, disc INTEGER, disctotal INTEGER, compilation INTEGER NOT NULL,
    duration REAL, viewpath BLOB, UNIQUE (origin_id, relpath)
);
CREATE TABLE dirs (inode INTEGER PRIMARY KEY, viewpath BLOB NOT NULL UNIQUE);
INSERT INTO meta VALUES ('next_inode', '2');
PRAGMA user_version = 1;
"""


def test_an_index_of_schema_1_is_migrated_keeping_inodes_and_every_file_is_read_again(
    library_copy: Path, tmp_path: Path
) -> None:
    """The upgrade from the first released schema: no rebuild, no new inodes, every tag read again."""
    path = tmp_path / "index.sqlite"
    found = sorted(LocalOrigin(1, os.fsencode(library_copy)).walk(WalkProblems()), key=lambda f: f.relpath)
    before = {f.relpath: inode for inode, f in enumerate(found, start=10)}
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA_1)
    with db:
        db.execute("INSERT INTO origins VALUES (1, ?)", (os.fsencode(library_copy),))
        db.executemany(
            "INSERT INTO files (inode, origin_id, relpath, kind, size, mtime_ns, ctime_ns, dev, ino, "
            "tags_ok, compilation) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
            [
                (before[f.relpath], f.relpath, f.kind, f.size, f.mtime_ns, f.ctime_ns, f.dev, f.ino)
                for f in found
            ],
        )
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_inode'", (str(10 + len(found)),))
    db.close()
    index = Index(path)
    assert not list(tmp_path.glob("index.sqlite.old-*"))
    report = scan_origin(index, _origin(index, library_copy))
    assert report.changed == len(before) and report.added == report.removed == 0
    assert {relpath: row.inode for relpath, row in index.stored_files(1).items()} == before
    tagged = [f for f in index.indexed_files([1]) if f.tags is not None]
    assert any(f.tags.title for f in tagged if f.tags is not None)  # read again, not kept from schema 1
    index.close()


class _ServerGoneWhileReading(LocalOrigin):
    """A local origin whose tag reads of `lost` fail as a remote origin's do when its server goes
    away in the middle of a scan; with `goes_down`, the origin does not answer from then on."""

    def __init__(self, origin_id: int, root: bytes, lost: set[bytes], *, goes_down: bool = False) -> None:
        super().__init__(origin_id, root)
        self.lost = lost
        self.goes_down = goes_down
        self.down = False

    def open_stream(self, relpath: bytes) -> BufferedReader:
        if relpath in self.lost:
            self.down = self.goes_down
            raise OriginUnavailable("the server went away")
        return super().open_stream(relpath)

    def unavailable_reason(
        self, knows_files: bool, timeout: float = 10.0, stop: threading.Event | None = None
    ) -> str | None:
        return "the server does not answer" if self.down else super().unavailable_reason(knows_files)


@pytest.mark.allow_log(r"could not read \d+ files of .* now \(the server went away\)")
@pytest.mark.failure_mode("remote-offline")
def test_a_track_whose_tags_could_not_be_read_now_is_read_again_by_the_next_scan(
    library_copy: Path, tmp_path: Path
) -> None:
    """An origin failing under a tag read says nothing about the file's tags: it must not be stored
    as a track without tags (the next scans would never read it again)."""
    index = _index(tmp_path)
    root = os.fsencode(library_copy)
    lost = b"Music/Sigur R\xc3\xb3s/\xc3\x81g\xc3\xa6tis byrjun/track1.ogg"
    origin = _ServerGoneWhileReading(index.origin_id(root), root, {lost})
    report = scan_origin(index, origin)
    assert lost not in index.stored_files(origin.origin_id)
    assert report.unreadable >= 1 and report.unavailable is None and report.added > 0
    origin.lost = set()
    again = scan_origin(index, origin)
    assert again.added == 1
    indexed = {f.relpath: f for f in index.indexed_files([origin.origin_id])}
    assert indexed[lost].tags == read_tags(os.path.join(root, lost))


@pytest.mark.allow_log(
    r"could not read \d+ files of .* now \(the server went away\)",
    r"unavailable \(the server does not answer\); known files kept",
)
@pytest.mark.failure_mode("remote-offline")
def test_a_scan_whose_origin_went_away_while_reading_tags_stops_and_removes_nothing(
    library_copy: Path, tmp_path: Path
) -> None:
    index = _index(tmp_path)
    root = os.fsencode(library_copy)
    origin = _ServerGoneWhileReading(index.origin_id(root), root, set())
    scan_origin(index, origin)
    known = set(index.stored_files(origin.origin_id))
    (library_copy / "Music/Sigur Rós/Ágætis byrjun/track1.ogg").unlink()  # a removal to not apply
    new = library_copy / "new.flac"
    shutil.copyfile(next(library_copy.rglob("*.flac")), new)
    origin.lost, origin.goes_down = {b"new.flac"}, True
    report = scan_origin(index, origin)
    assert report.unavailable is not None and "does not answer" in report.unavailable
    assert set(index.stored_files(origin.origin_id)) == known
