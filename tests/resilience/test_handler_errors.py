"""2.2 in-process: an unexpected exception inside a FUSE handler answers that request with EIO, is
logged with its traceback and counted, and the next request is served normally."""

from __future__ import annotations

import errno
import logging

import pyfuse3
import pytest
import trio

from musicfs.core.faults import install_hook
from musicfs.fs.operations import MusicOperations
from musicfs.fs.stats import STATS
from musicfs.tree.snapshot import Tree


def _fail_once(name: str) -> None:
    if name == "fs.getattr" and not STATS.failures["getattr:unexpected"]:
        raise ZeroDivisionError("injected")


@pytest.mark.allow_log(r"unexpected error in FUSE handler getattr; answered EIO, still serving")
@pytest.mark.failure_mode("2.2")
def test_unexpected_exception_becomes_eio_and_serving_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ops = MusicOperations(Tree.empty, {}, 1.0)
    answers: list[object] = []

    async def main() -> None:
        for _ in range(2):
            try:
                answers.append((await ops.getattr(pyfuse3.ROOT_INODE, None)).st_ino)
            except pyfuse3.FUSEError as error:
                answers.append(error.errno)

    STATS.failures.clear()
    install_hook(_fail_once)
    try:
        with caplog.at_level(logging.ERROR):
            trio.run(main)
    finally:
        install_hook(None)
    assert answers == [errno.EIO, pyfuse3.ROOT_INODE]
    assert STATS.failures["getattr:unexpected"] == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "getattr" in record.getMessage() and record.exc_info and record.exc_info[0] is ZeroDivisionError


@pytest.mark.failure_mode("2.2")
def test_unknown_inode_is_enoent_not_an_error() -> None:
    ops = MusicOperations(Tree.empty, {}, 1.0)

    async def main() -> int:
        try:
            await ops.getattr(12345, None)
        except pyfuse3.FUSEError as error:
            return error.errno
        return 0

    assert trio.run(main) == errno.ENOENT
