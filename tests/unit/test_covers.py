"""Cover images where players look (issue 13.2): in every album folder that tracks beside them landed
in, and as `cover.<ext>` where the album has art under another name."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from musicfs.core.kinds import AUDIO, COVER
from musicfs.core.types import EmbeddedPicture, ViewFile
from musicfs.tree.covers import ALIAS_BASE, cover_aliases


def _file(inode: int, viewpath: bytes, relpath: bytes) -> ViewFile:
    kind = AUDIO if relpath.endswith(b".flac") else COVER
    return ViewFile(inode, viewpath, 1, relpath, 10, 5, 5, kind)


def _split(files: Sequence[ViewFile]) -> tuple[list[ViewFile], list[ViewFile]]:
    return [f for f in files if f.kind == AUDIO], [f for f in files if f.kind == COVER]


def _aliases(*files: ViewFile) -> dict[bytes, bytes]:
    """view path of each alias -> the origin file it shows."""
    found = cover_aliases(*_split(files))
    assert all(a.inode >= ALIAS_BASE for a in found)
    assert len({a.inode for a in found}) == len(found)
    return {a.viewpath: a.relpath for a in found}


def test_a_folder_jpg_is_also_shown_as_cover_jpg() -> None:
    files = (_file(2, b"A/B/01 x.flac", b"d/1.flac"), _file(3, b"A/B/Folder.JPG", b"d/Folder.JPG"))
    assert _aliases(*files) == {b"A/B/cover.jpg": b"d/Folder.JPG"}


def test_an_album_with_a_cover_file_gets_no_alias() -> None:
    files = (
        _file(2, b"A/B/01 x.flac", b"d/1.flac"),
        _file(3, b"A/B/cover.png", b"d/cover.png"),
        _file(4, b"A/B/back.jpg", b"d/back.jpg"),
    )
    assert _aliases(*files) == {}


def test_the_front_is_preferred_over_other_art_for_cover() -> None:
    files = (
        _file(2, b"A/B/01 x.flac", b"d/1.flac"),
        _file(3, b"A/B/back.jpg", b"d/back.jpg"),
        _file(4, b"A/B/front.png", b"d/front.png"),
    )
    assert _aliases(*files) == {b"A/B/cover.png": b"d/front.png"}


def test_tracks_of_one_folder_in_two_albums_both_show_its_art() -> None:
    files = (
        _file(2, b"A/B (1959)/01 x.flac", b"d/1.flac"),
        _file(3, b"A/B/02 y.flac", b"d/2.flac"),  # the same origin folder, another album folder
        _file(4, b"A/B (1959)/cover.jpg", b"d/cover.jpg"),
    )
    assert _aliases(*files) == {b"A/B/cover.jpg": b"d/cover.jpg"}


def test_aliases_are_stable_across_calls_and_never_taken_names() -> None:
    files = [_file(2 + n, f"A/{n}/01 x.flac".encode(), f"d{n}/1.flac".encode()) for n in range(5)]
    files += [_file(20 + n, f"A/{n}/folder.jpg".encode(), f"d{n}/folder.jpg".encode()) for n in range(5)]
    first = cover_aliases(*_split(files))
    again = cover_aliases(*_split(list(reversed(files))))
    assert sorted(first, key=lambda a: a.inode) == sorted(again, key=lambda a: a.inode)
    assert all(a.kind == COVER for a in first)
    taken = {f.viewpath for f in files}
    assert not taken & {a.viewpath for a in first}
    assert {posixpath.basename(a.viewpath) for a in first} == {b"cover.jpg"}


def test_a_folder_without_art_shows_the_picture_of_its_first_track_by_name_that_embeds_one() -> None:
    tracks = [
        _file(5, b"A/B/03 z.flac", b"d/3.flac"),
        _file(4, b"A/B/02 y.flac", b"d/2.flac"),
        _file(2, b"A/B/01 x.flac", b"d/1.flac"),  # no picture
        _file(6, b"A/C/01 w.flac", b"e/1.flac"),
    ]
    pictures = {
        5: EmbeddedPicture(100, 50, "png"),
        4: EmbeddedPicture(200, 60, "jpg"),
        6: EmbeddedPicture(9, 8, "jpg"),
    }
    found = {a.viewpath: a for a in cover_aliases(tracks, [], pictures)}
    assert sorted(found) == [b"A/B/cover.jpg", b"A/C/cover.jpg"]
    cover = found[b"A/B/cover.jpg"]
    assert (cover.relpath, cover.span, cover.kind) == (b"d/2.flac", (200, 60), COVER)
    assert cover.inode >= ALIAS_BASE and cover.inode != found[b"A/C/cover.jpg"].inode


def test_a_folder_with_any_image_shows_no_embedded_picture() -> None:
    files = [
        _file(2, b"A/B/01 x.flac", b"d/1.flac"),
        _file(3, b"A/B/back.png", b"d/back.png"),  # not a preferred name, but art all the same
        _file(4, b"A/C/01 x.flac", b"d/2.flac"),  # beside the same origin cover: gets an alias of it
    ]
    tracks, covers = _split(files)
    pictures = {2: EmbeddedPicture(100, 50, "jpg"), 4: EmbeddedPicture(100, 50, "jpg")}
    assert all(a.span is None for a in cover_aliases(tracks, covers, pictures))
