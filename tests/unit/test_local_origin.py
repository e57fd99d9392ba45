"""What a local origin may serve (7.2, docs/threat-model.md): never a file outside the origin (a
symlink leading out, also one swapped in after the scan), never a FIFO or device (opening one must not
block), and with a shared mount only what every user could read in the origin; walk problems are
logged once, not on every rescan (item 14 of issue 8)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from musicfs.core.errors import OriginFileGone, OriginFileNotRegular, OriginFileRefused
from musicfs.index.scanner import scan_origin
from musicfs.index.store import Index
from musicfs.origins.base import WalkProblems
from musicfs.origins.local import LocalOrigin
from musicfs.tags import read_tags

T = TypeVar("T")
TRACK = b"Music/Sigur R\xc3\xb3s/\xc3\x81g\xc3\xa6tis byrjun/track2.ogg"


def _within(seconds: float, call: Callable[[], T]) -> T:
    """Run `call` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call blocked for more than {seconds} s"
    if error:
        raise error[0]
    return result[0]


def _origin(root: Path, *, shared: bool = False) -> LocalOrigin:
    return LocalOrigin(1, os.fsencode(root), shared_mount=shared)


def _read(origin: LocalOrigin, relpath: bytes) -> bytes:
    fd = _within(5, lambda: origin.open(relpath))
    try:
        return origin.read(fd, 1 << 24, 0)
    finally:
        origin.close(fd)


def _walked(origin: LocalOrigin) -> set[bytes]:
    return {found.relpath for found in origin.walk(WalkProblems())}


@pytest.mark.allow_log(r"not a regular file \(a (FIFO|socket)\)")
@pytest.mark.failure_mode("7.2")
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_non_regular_file_is_refused_at_once_and_never_walked(library_copy: Path, kind: str) -> None:
    track = library_copy / os.fsdecode(TRACK)
    track.unlink()
    if kind == "fifo":
        os.mkfifo(track)
    else:  # bound in a short path (AF_UNIX names are short), then moved into place
        with tempfile.TemporaryDirectory(dir="/tmp") as short, socket.socket(socket.AF_UNIX) as listener:
            listener.bind(f"{short}/s")
            os.rename(f"{short}/s", track)
    origin = _origin(library_copy)
    with pytest.raises(OriginFileNotRegular, match="not a regular file"):
        _within(5, lambda: origin.open(TRACK))
    assert TRACK not in _within(30, lambda: _walked(origin))


@pytest.mark.allow_log(r"a symlink leading outside the origin")
@pytest.mark.failure_mode("7.2")
def test_a_symlink_leading_out_is_never_walked_nor_opened(library_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.flac"
    secret.write_bytes(b"root's secret")
    (library_copy / "out.flac").symlink_to(secret)
    (library_copy / "out-folder").symlink_to(tmp_path)
    (library_copy / "inside.ogg").symlink_to(library_copy / os.fsdecode(TRACK))
    origin = _origin(library_copy)
    walked = _walked(origin)
    assert b"out.flac" not in walked and not any(p.startswith(b"out-folder/") for p in walked)
    assert b"inside.ogg" in walked  # a symlink within the origin is followed
    with pytest.raises(OriginFileRefused, match="outside its origin"):
        origin.open(b"out.flac")
    with pytest.raises(OriginFileRefused):
        origin.open(b"out-folder/secret.flac")
    assert _read(origin, b"inside.ogg") == (library_copy / os.fsdecode(TRACK)).read_bytes()


@pytest.mark.failure_mode("7.2")
def test_a_symlink_swapped_in_after_the_scan_is_refused_at_open(library_copy: Path, tmp_path: Path) -> None:
    origin = _origin(library_copy)
    assert TRACK in _walked(origin)
    secret = tmp_path / "secret"
    secret.write_bytes(b"never served")
    track = library_copy / os.fsdecode(TRACK)
    track.unlink()
    track.symlink_to(secret)
    with pytest.raises(OriginFileRefused):
        origin.open(TRACK)
    # A folder on the way swapped for a symlink that leads out: the same.
    album = track.parent
    album.rename(tmp_path / "album")
    album.symlink_to(tmp_path / "album")
    (tmp_path / "album" / track.name).unlink()
    (tmp_path / "album" / track.name).write_bytes(b"outside now")
    with pytest.raises(OriginFileRefused):
        origin.open(TRACK)


@pytest.mark.allow_log(r"other users may not read it")
@pytest.mark.failure_mode("7.2")
def test_a_shared_mount_serves_only_what_every_user_may_read(library_copy: Path) -> None:
    private_file = library_copy / os.fsdecode(TRACK)
    private_file.chmod(0o600)
    private_folder = library_copy / "CD Rips"
    in_private_folder = next(p for p in sorted(private_folder.rglob("*")) if p.is_file())
    private_folder.chmod(0o711)  # others may pass through but not list: not shown either
    public = sorted(p for p in (library_copy / "Music" / "Sigur Rós").rglob("*.ogg") if p != private_file)[0]
    shared = _origin(library_copy, shared=True)
    walked = _walked(shared)
    assert TRACK not in walked
    assert not any(p.startswith(b"CD Rips/") for p in walked)
    assert os.fsencode(public.relative_to(library_copy)) in walked
    with pytest.raises(OriginFileRefused, match="other users may not read it"):
        shared.open(TRACK)
    with pytest.raises(OriginFileRefused, match="its folder"):
        shared.open(os.fsencode(in_private_folder.relative_to(library_copy)))
    assert _read(shared, os.fsencode(public.relative_to(library_copy))) == public.read_bytes()

    alone = _origin(library_copy)  # not shared: the daemon's own access applies
    assert TRACK in _walked(alone)
    assert _read(alone, TRACK) == private_file.read_bytes()


def test_a_shared_mount_of_a_root_others_may_not_list_is_unavailable(library_copy: Path) -> None:
    library_copy.chmod(0o750)
    reason = _origin(library_copy, shared=True).unavailable_reason(knows_files=True)
    assert reason is not None and "other users may not list it" in reason
    assert _origin(library_copy).unavailable_reason(knows_files=True) is None


def test_a_missing_file_is_gone(library_copy: Path) -> None:
    (library_copy / os.fsdecode(TRACK)).unlink()
    with pytest.raises(OriginFileGone):
        _origin(library_copy).open(TRACK)


def test_tags_read_through_the_checked_open_match_reading_the_path(library_copy: Path) -> None:
    origin = _origin(library_copy)
    with origin.open_stream(TRACK) as stream:
        assert read_tags(stream) == read_tags(origin.abspath(TRACK))


@pytest.mark.allow_log(
    r"cannot stat .*dangling\.flac", r"a symlink leading outside the origin", r"a symlink loop"
)
def test_walk_problems_are_logged_once_over_rescans(
    library_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (library_copy / "Music" / "loop").symlink_to("..")
    (library_copy / "Music" / "dangling.flac").symlink_to(library_copy / "nowhere.flac")
    (library_copy / "Music" / "escape.flac").symlink_to("/etc/hostname")
    index = Index(tmp_path / "index.sqlite")
    origin = LocalOrigin(index.origin_id(os.fsencode(library_copy)), os.fsencode(library_copy))

    def warnings() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and "Music/" in r.getMessage()
        ]

    with caplog.at_level(logging.DEBUG, logger="musicfs"):
        scan_origin(index, origin)
        first = warnings()
        scan_origin(index, origin)
        scan_origin(index, origin)
        assert warnings() == first
        assert len(first) == 3, first
        assert any("symlink loop" in m for m in first)
        assert any("dangling.flac" in m and "No such file" in m for m in first)
        assert any("escape.flac" in m and "outside the origin" in m for m in first)
        # A problem that went away and came back is worth a new warning.
        (library_copy / "Music" / "loop").unlink()
        scan_origin(index, origin)
        (library_copy / "Music" / "loop").symlink_to("..")
        scan_origin(index, origin)
        assert sum("symlink loop" in m for m in warnings()) == 2


def test_an_origin_reached_through_a_symlink_that_is_moved_keeps_serving(
    library_copy: Path, tmp_path: Path
) -> None:
    second = tmp_path / "second-disk"
    shutil.copytree(library_copy, second)
    (second / os.fsdecode(TRACK)).write_bytes(b"the second disk's bytes")
    link = tmp_path / "music"
    link.symlink_to(library_copy)
    origin = _origin(link)
    assert _read(origin, TRACK) == (library_copy / os.fsdecode(TRACK)).read_bytes()
    link.unlink()
    link.symlink_to(second)  # the admin points the origin at another disk
    assert _read(origin, TRACK) == b"the second disk's bytes"


def test_a_folder_reached_through_a_symlink_is_walked_at_its_real_path(
    library_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13.3: a symlink to a folder the walk also reaches without one does not take its place
    (whatever their names' order), and is no problem worth a warning; links to files are marked."""
    (library_copy / "A link").symlink_to("Music")  # sorts before Music
    (library_copy / "Music" / "zz link.ogg").symlink_to(os.fsdecode(TRACK).removeprefix("Music/"))
    with caplog.at_level(logging.DEBUG, logger="musicfs"):
        found = {f.relpath: f for f in _origin(library_copy).walk(WalkProblems())}
    assert not any(path.startswith(b"A link/") for path in found)
    assert TRACK in found and not found[TRACK].linked
    link = found[b"Music/zz link.ogg"]
    assert link.linked and (link.dev, link.ino) == (found[TRACK].dev, found[TRACK].ino)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_folder_reachable_only_through_a_symlink_is_walked_through_it(library_copy: Path) -> None:
    hidden = library_copy / ".attic"
    hidden.mkdir()
    (library_copy / "Music").rename(hidden / "Music")
    (library_copy / "Music").symlink_to(".attic/Music")
    found = {f.relpath: f for f in _origin(library_copy).walk(WalkProblems())}
    assert TRACK in found and found[TRACK].linked
