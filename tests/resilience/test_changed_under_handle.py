"""7.1 in-process: a handle opened before a file changed never reads the new version's bytes.

The kernel normally retires such a handle's inode once it looks up the new generation; this is the
daemon's own guard for reads that reach it before any lookup did (and for a tree that dropped the
file): EIO, and the origin file is still closed when the handle is released.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyfuse3
import pytest
import trio

from musicfs.core.kinds import AUDIO, COVER
from musicfs.core.types import ViewFile
from musicfs.fs.operations import MusicOperations
from musicfs.origins.gateway import OriginGateway
from musicfs.origins.local import LocalOrigin
from musicfs.tree.snapshot import Tree

INODES = {"a.flac": 10, "b.flac": 11}
ALIAS = 12


def _tree(origin: Path, *names: str) -> Tree:
    shown = []
    for name in names:
        inode = INODES[name]
        found = os.stat(origin / name)
        relpath = name.encode()
        shown.append(
            ViewFile(
                inode, b"A/" + relpath, 1, relpath, found.st_size, found.st_mtime_ns, found.st_ctime_ns, AUDIO
            )
        )
    return Tree.build(shown, {b"A": 2})


@pytest.mark.failure_mode("7.1")
@pytest.mark.parametrize("change", ["rewritten in place", "removed"])
def test_a_read_through_a_handle_from_before_the_change_is_eio(tmp_path: Path, change: str) -> None:
    (tmp_path / "a.flac").write_bytes(b"old " * 4096)
    (tmp_path / "b.flac").write_bytes(b"other " * 4096)
    current = [_tree(tmp_path, "a.flac", "b.flac")]
    gateway = OriginGateway(LocalOrigin(1, os.fsencode(tmp_path)), timeout=5.0)
    ops = MusicOperations(lambda: current[0], {1: gateway}, 1.0)

    async def main() -> tuple[bytes, int, bytes]:
        held = (await ops.open(10, os.O_RDONLY, None)).fh
        other = (await ops.open(11, os.O_RDONLY, None)).fh
        first = await ops.read(held, 0, 4)
        if change == "removed":
            (tmp_path / "a.flac").unlink()
            current[0] = _tree(tmp_path, "b.flac")
        else:
            (tmp_path / "a.flac").write_bytes(b"new " * 4096)
            current[0] = _tree(tmp_path, "a.flac", "b.flac")
        try:
            await ops.read(held, 4, 4)
            answer = 0
        except pyfuse3.FUSEError as error:
            answer = error.errno
        unchanged = await ops.read(other, 0, 6)  # a file that did not change reads on
        await ops.release(held)
        await ops.release(other)
        return first, answer, unchanged

    first, answer, unchanged = trio.run(main)
    assert (first, answer, unchanged) == (b"old ", errno.EIO, b"other ")
    assert not _open_files_under(tmp_path)


def _open_files_under(folder: Path) -> list[str]:
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # the descriptor of the listing itself
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


@pytest.mark.allow_log(r"open failed: .* changed since the last scan")
@pytest.mark.failure_mode("7.1")
def test_an_embedded_cover_of_a_track_changed_since_the_scan_is_eio_not_other_bytes(tmp_path: Path) -> None:
    """A cover embedded in a track is a byte range found by the last scan: once the track is
    rewritten (its picture may be elsewhere now) an open answers EIO until a rescan shows the new
    range; before that, reads give exactly the range, clipped at its end."""
    picture = b"\xff\xd8\xff" + os.urandom(3000)
    (tmp_path / "a.flac").write_bytes(b"head" * 100 + picture + b"audio" * 1000)
    found = os.stat(tmp_path / "a.flac")
    cover = ViewFile(
        ALIAS,
        b"A/cover.jpg",
        1,
        b"a.flac",
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
        COVER,
        span=(400, len(picture)),
    )
    tree = Tree.build([cover], {b"A": 2})
    assert tree.get(ALIAS) is not None and tree.get(ALIAS).size == len(picture)  # type: ignore[union-attr]
    gateway = OriginGateway(LocalOrigin(1, os.fsencode(tmp_path)), timeout=5.0)
    ops = MusicOperations(lambda: tree, {1: gateway}, 1.0)

    async def main() -> tuple[bytes, bytes, int]:
        fh = (await ops.open(ALIAS, os.O_RDONLY, None)).fh
        whole = await ops.read(fh, 0, 1 << 20)
        past = await ops.read(fh, len(picture), 10)
        await ops.release(fh)
        (tmp_path / "a.flac").write_bytes(b"retagged" * 200 + picture + b"audio" * 1000)
        try:
            await ops.open(ALIAS, os.O_RDONLY, None)
            answer = 0
        except pyfuse3.FUSEError as error:
            answer = error.errno
        return whole, past, answer

    assert trio.run(main) == (picture, b"", errno.EIO)
    assert not _open_files_under(tmp_path)
