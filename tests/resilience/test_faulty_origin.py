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
from musicfs.fs.operations import MusicOperations
from musicfs.library import Library
from tests.resilience.conftest import BuildApp

TRACK = ("Björk", "Homogenic (1997)", "03 Unravel.flac")


def _setup(
    build_app: BuildApp, origin_dir: Path, faults: list[OriginFault]
) -> tuple[MusicOperations, Library]:
    """The real app on `origin_dir`, its origin failing with `faults` from after the first scan."""
    service = build_app([origin_dir], faulty=True, read_timeout=5.0)
    library = service.parts.library
    (faulty,) = library.origins
    assert isinstance(faulty, FaultyOrigin)
    faulty.faults = tuple(faults)
    return service.parts.operations, library


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
def test_short_reads_are_completed(library_copy: Path, build_app: BuildApp) -> None:
    ops, library = _setup(build_app, library_copy, [OriginFault("*", "short")])
    inode = _inode(library, TRACK)
    assert trio.run(_read_all, ops, inode) == _expected(library_copy, TRACK)


@pytest.mark.allow_log(r"open failed: (Input/output error|No such file or directory)")
@pytest.mark.failure_mode("3.8")
@pytest.mark.parametrize(("action", "code"), [("eio", errno.EIO), ("enoent", errno.ENOENT)])
def test_origin_errors_become_their_errno_for_that_file_only(
    library_copy: Path, build_app: BuildApp, action: str, code: int
) -> None:
    ops, library = _setup(build_app, library_copy, [OriginFault("Downloads/Björk*", action)])
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
def test_vanished_origin_keeps_the_tree(library_copy: Path, build_app: BuildApp) -> None:
    _, library = _setup(build_app, library_copy, [OriginFault("*", "vanish")])
    before = library.tree.file_count
    reports = library.rescan()
    assert reports[0].unavailable
    assert library.tree.file_count == before > 0
