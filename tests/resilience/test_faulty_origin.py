"""3.8 and friends in-process: what each injected origin fault looks like through the FUSE handlers.
Short reads are completed, errors become their errno, a vanished origin keeps the tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyfuse3
import pytest
import trio

from chaos.oracle import demo_view
from chaos.origins import FaultyOrigin, OriginFault
from musicfs.core.config import build_config
from musicfs.fs.operations import MusicOperations
from musicfs.index.store import Index
from musicfs.library import Library
from musicfs.origins.gateway import OriginGateway

TRACK = ("Björk", "Homogenic (1997)", "03 Unravel.flac")


def _setup(origin_dir: Path, state: Path, faults: list[OriginFault]) -> tuple[MusicOperations, Library]:
    config = build_config({}, {"origin": [str(origin_dir)], "state_dir": str(state)})
    library = Library(config, Index(state / "index.sqlite"))
    library.rescan()
    faulty = FaultyOrigin.around(library.origins[0], faults, seed=3)
    library.origins[0] = faulty
    return MusicOperations(
        lambda: library.tree, {faulty.origin_id: OriginGateway(faulty, 5.0)}, 300.0
    ), library


def _inode(library: Library, names: tuple[str, ...]) -> int:
    inode = pyfuse3.ROOT_INODE
    for name in names:
        node = library.tree.lookup(inode, name.encode())
        assert node is not None
        inode = node.inode
    return inode


async def _read_all(ops: MusicOperations, inode: int) -> bytes:
    handle = await ops.open(inode, os.O_RDONLY, None)
    try:
        return await ops.read(handle.fh, 0, 1 << 20)
    finally:
        await ops.release(handle.fh)


def _expected(origin_dir: Path, names: tuple[str, ...]) -> bytes:
    """The bytes the view path `names` must give: its origin file as the oracle names it."""
    return demo_view(origin_dir)["/".join(names)].read_bytes()


@pytest.mark.failure_mode("3.8")
def test_short_reads_are_completed(library_copy: Path, tmp_path: Path) -> None:
    ops, library = _setup(library_copy, tmp_path, [OriginFault("*", "short")])
    inode = _inode(library, TRACK)
    assert trio.run(_read_all, ops, inode) == _expected(library_copy, TRACK)


@pytest.mark.allow_log(r"open failed: (Input/output error|No such file or directory)")
@pytest.mark.failure_mode("3.8")
@pytest.mark.parametrize(("action", "code"), [("eio", errno.EIO), ("enoent", errno.ENOENT)])
def test_origin_errors_become_their_errno_for_that_file_only(
    library_copy: Path, tmp_path: Path, action: str, code: int
) -> None:
    ops, library = _setup(library_copy, tmp_path, [OriginFault("Downloads/Björk*", action)])
    broken = _inode(library, TRACK)
    fine_names = ("Sigur Rós", "Untitled Demos", "01 Untitled #1.opus")
    fine = _inode(library, fine_names)

    async def main() -> tuple[int, bytes]:
        try:
            await _read_all(ops, broken)
        except pyfuse3.FUSEError as error:
            return error.errno, await _read_all(ops, fine)
        return 0, b""

    got, data = trio.run(main)
    assert got == code
    assert data == _expected(library_copy, fine_names)


@pytest.mark.allow_log(r"unavailable \(.*vanished \(injected\)\); known files kept")
@pytest.mark.failure_mode("origin-vanished")
def test_vanished_origin_keeps_the_tree(library_copy: Path, tmp_path: Path) -> None:
    _, library = _setup(library_copy, tmp_path, [OriginFault("*", "vanish")])
    before = library.tree.file_count
    reports = library.rescan()
    assert reports[0].unavailable
    assert library.tree.file_count == before > 0
