"""5.1 / 3.8 in-process: a read stuck on a hung origin file answers EIO at its deadline, while
lookups, listings and reads of other files keep being answered at once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyfuse3
import pytest
import trio
import trio.testing

from chaos.oracle import demo_view
from chaos.origins import FaultyOrigin, OriginFault
from musicfs.fs.operations import MusicOperations
from musicfs.library import Library
from tests.resilience.conftest import BuildApp

TIMEOUT = 10.0
HUNG = "Music/Sigur Rós/*"


def _operations(build_app: BuildApp, library_copy: Path) -> tuple[MusicOperations, Library, FaultyOrigin]:
    """The real app on the library, every file under HUNG hanging from after the first scan on."""
    service = build_app([library_copy], faulty=True, read_timeout=TIMEOUT)
    library = service.parts.library
    (faulty,) = library.origins
    assert isinstance(faulty, FaultyOrigin)
    faulty.faults = (OriginFault(HUNG, "hang"),)
    return service.parts.operations, library, faulty


def _inode(library: Library, *names: str) -> int:
    inode = pyfuse3.ROOT_INODE
    for name in names:
        node = library.tree.lookup(inode, name.encode())
        assert node is not None, name
        inode = node.inode
    return inode


@pytest.mark.allow_log(r"open failed: .*no answer within 10 s")
@pytest.mark.failure_mode("5.1")
@pytest.mark.failure_mode("3.8")
def test_hung_read_gives_eio_while_others_are_served(library_copy: Path, build_app: BuildApp) -> None:
    ops, library, faulty = _operations(build_app, library_copy)
    hung = _inode(library, "Sigur Rós", "Ágætis byrjun (1999)", "01 Svefn-g-englar.ogg")
    other = _inode(library, "Björk", "Debut (1993)", "01 Human Behaviour.mp3")
    other_bytes = demo_view(library_copy)["Björk/Debut (1993)/01 Human Behaviour.mp3"].read_bytes()
    outcome: dict[str, object] = {}

    async def hung_reader() -> None:
        try:
            handle = await ops.open(hung, os.O_RDONLY, None)
            await ops.read(handle.fh, 0, 4096)
        except pyfuse3.FUSEError as error:
            outcome["hung"] = (error.errno, trio.current_time())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hung_reader)
            await trio.testing.wait_all_tasks_blocked()
            root = await ops.getattr(pyfuse3.ROOT_INODE, None)
            entry = await ops.lookup(pyfuse3.ROOT_INODE, "Björk".encode(), None)
            handle = await ops.open(other, os.O_RDONLY, None)
            data = await ops.read(handle.fh, 0, len(other_bytes) + 100)
            await ops.release(handle.fh)
            outcome["others"] = (root.st_ino, entry.st_ino > 1, data == other_bytes, trio.current_time())

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.2))
    finally:
        faulty.release()
    assert outcome["others"][:3] == (1, True, True)
    assert outcome["others"][3] < TIMEOUT  # answered before the hung read's deadline
    code, when = outcome["hung"]
    assert code == errno.EIO
    assert TIMEOUT <= when < TIMEOUT + 1
