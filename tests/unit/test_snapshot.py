"""Tree snapshots: building, lookups, inode-ordered listing that resumes across snapshots, and the
diff that drives kernel invalidations."""

from __future__ import annotations

import unicodedata
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
    span: tuple[int, int] | None = None
    encoded: bool = False


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
    # one.flac shows another version under the same name: its entry goes too, so the next lookup
    # brings the new generation and the kernel starts a fresh inode for it
    assert sorted(entries) == [(101, b"one.flac", 7), (101, b"two.flac", 3), (102, b"three.flac", 9)]
    assert inodes == [7, 101, 102]


def test_a_file_moved_and_changed_is_invalidated_where_it_was_and_as_an_inode() -> None:
    old = _tree(Shown(7, b"A/B/one.flac"))
    new = _tree(Shown(7, b"C/retitled.flac", ctime_ns=6))  # retagged: a new name and new bytes
    entries, inodes = changed_between(old, new)
    assert (101, b"one.flac", 7) in entries
    assert 7 in inodes


def test_each_version_of_a_file_has_its_own_generation() -> None:
    before = _tree(Shown(7, b"A/B/one.flac")).get(7)
    after = _tree(Shown(7, b"A/B/one.flac", ctime_ns=6)).get(7)
    same = _tree(Shown(7, b"A/B/one.flac")).get(7)
    assert before is not None and after is not None and same is not None
    assert before.generation != after.generation and before.generation == same.generation != 0
    assert _tree().get(ROOT_INODE).generation == 0  # type: ignore[union-attr]


def test_no_change_no_invalidation() -> None:
    files = (Shown(7, b"A/B/one.flac"), Shown(9, b"C/three.flac"))
    assert changed_between(_tree(*files), _tree(*files)) == ([], [])


def test_a_name_in_another_unicode_form_finds_the_same_file() -> None:
    nfc = "Sigur Rós/Ágætis.flac".encode()
    tree = Tree.build([Shown(7, b"A/" + nfc.split(b"/")[1])], FOLDERS)
    nfd = unicodedata.normalize("NFD", "Ágætis.flac").encode()
    assert nfd != nfc.split(b"/")[1]
    found = tree.lookup(100, nfd)
    assert found is not None and found.inode == 7 and found.name == "Ágætis.flac".encode()
    assert tree.lookup(100, b"\xff\xfe") is None  # not UTF-8: no other form to try
    assert [n.name for n in tree.children_after(tree.get(100), 0)] == ["Ágætis.flac".encode()]  # type: ignore[arg-type]
