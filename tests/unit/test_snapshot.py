"""Tree snapshots: building, lookups, inode-ordered listing that resumes across snapshots, and the
diff that drives kernel invalidations."""

from __future__ import annotations

from dataclasses import dataclass

from musicfs.fs.invalidate import changed_between
from musicfs.tree.snapshot import ROOT_INODE, Tree


@dataclass(frozen=True)
class Shown:
    inode: int
    viewpath: bytes
    origin_id: int = 1
    relpath: bytes = b"x"
    size: int = 10
    mtime_ns: int = 5
    ctime_ns: int = 5


FOLDERS = {b"A": 100, b"A/B": 101, b"C": 102}


def _tree(*files: Shown) -> Tree:
    return Tree.build(files, FOLDERS)


def test_build_lookup_and_folder_times() -> None:
    tree = _tree(Shown(7, b"A/B/one.flac", mtime_ns=50), Shown(3, b"A/B/two.flac"), Shown(9, b"C/three.flac"))
    folder = tree.lookup(ROOT_INODE, b"A")
    assert folder is not None and folder.inode == 100 and folder.is_dir
    one = tree.lookup(101, b"one.flac")
    assert one is not None and one.inode == 7 and tree.path_of(one) == b"A/B/one.flac"
    assert folder.mtime_ns == 50 and tree.get(ROOT_INODE).mtime_ns == 50  # type: ignore[union-attr]
    assert tree.file_count == 3 and tree.total_bytes == 30


def test_listing_is_by_inode_and_resumes_after_the_last_inode() -> None:
    tree = _tree(Shown(7, b"A/B/one.flac"), Shown(3, b"A/B/two.flac"), Shown(5, b"A/B/six.flac"))
    folder = tree.get(101)
    assert folder is not None
    assert [n.inode for n in tree.children_after(folder, 0)] == [3, 5, 7]
    newer = _tree(Shown(7, b"A/B/one.flac"), Shown(4, b"A/B/new.flac"), Shown(5, b"A/B/six.flac"))
    newer_folder = newer.get(101)
    assert newer_folder is not None
    assert [n.inode for n in newer.children_after(newer_folder, 5)] == [7]  # resumes, no repeats


def test_diff_names_vanished_moved_and_changed_entries() -> None:
    old = _tree(Shown(7, b"A/B/one.flac"), Shown(3, b"A/B/two.flac"), Shown(9, b"C/three.flac"))
    new = _tree(Shown(7, b"A/B/one.flac", size=11), Shown(3, b"C/two.flac"), Shown(8, b"C/four.flac"))
    entries, inodes = changed_between(old, new)
    assert sorted(entries) == [(101, b"two.flac", 3), (102, b"three.flac", 9)]
    assert inodes == [7, 101, 102]


def test_no_change_no_invalidation() -> None:
    files = (Shown(7, b"A/B/one.flac"), Shown(9, b"C/three.flac"))
    assert changed_between(_tree(*files), _tree(*files)) == ([], [])
