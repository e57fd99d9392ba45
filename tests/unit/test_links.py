"""Which path of a track reached by several paths is shown (issue 13.3), as pure logic."""

from __future__ import annotations

from musicfs.core.types import TagSet
from musicfs.index.links import one_path_per_track
from musicfs.index.store import IndexedFile


def _file(inode: int, relpath: bytes, ino: int, *, linked: bool = False, kind: str = "audio") -> IndexedFile:
    return IndexedFile(inode, 1, relpath, kind, TagSet(), dev=7, ino=ino, linked=linked)


def test_a_path_without_a_symlink_wins_over_any_name_order() -> None:
    real = _file(2, b"Zed/01.flac", 100)
    files = [_file(3, b"A/01.flac", 100, linked=True), real, _file(4, b"B/01.flac", 101)]
    assert one_path_per_track(files) == [real, files[2]]


def test_hard_links_show_the_first_path_in_byte_order_whatever_the_input_order() -> None:
    files = [_file(5, b"b.flac", 9), _file(6, b"a b.flac", 9), _file(7, b"a.flac", 9)]
    assert one_path_per_track(files) == [files[1]]
    assert one_path_per_track(files[::-1]) == [files[1]]


def test_the_same_inode_in_another_origin_or_device_is_another_track() -> None:
    one = _file(2, b"x.flac", 9)
    other_origin = IndexedFile(3, 2, b"x.flac", "audio", TagSet(), dev=7, ino=9)
    other_device = IndexedFile(4, 1, b"y.flac", "audio", TagSet(), dev=8, ino=9)
    assert one_path_per_track([one, other_origin, other_device]) == [one, other_origin, other_device]


def test_covers_keep_every_name() -> None:
    covers = [
        _file(2, b"A/cover.jpg", 9, kind="cover"),
        _file(3, b"A/folder.jpg", 9, kind="cover", linked=True),
    ]
    assert one_path_per_track(covers) == covers


def test_identical_objects_of_a_remote_origin_are_two_tracks() -> None:
    """A remote origin has no devices (0) and numbers a file by its content's ETag: two copies of
    one recording are two objects, and both are shown."""
    copies = [
        IndexedFile(2, 1, b"a/01.flac", "audio", TagSet(), dev=0, ino=77),
        IndexedFile(3, 1, b"b/01.flac", "audio", TagSet(), dev=0, ino=77),
    ]
    assert one_path_per_track(copies) == copies
