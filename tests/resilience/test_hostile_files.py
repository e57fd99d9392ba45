"""7.2 in-process: one origin file that hangs every open can hold only a few of its origin's threads,
so the origin's other files keep being served while it hangs."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
import trio
import trio.testing

from chaos.origins import FaultyOrigin, OriginFault
from musicfs.core.errors import OriginTimeout
from musicfs.origins.gateway import THREADS_PER_FILE, THREADS_PER_ORIGIN, OriginGateway

TIMEOUT = 10.0
OPENS = 20


@pytest.mark.failure_mode("7.2")
def test_one_hung_file_never_takes_all_of_its_origins_threads(library_copy: Path) -> None:
    files = sorted(p for p in library_copy.rglob("*") if p.is_file() and p.suffix in (".flac", ".ogg"))
    hung, others = files[0], files[1:]
    hung_relpath = str(hung.relative_to(library_copy))
    pattern = glob.escape(hung_relpath)
    faulty = FaultyOrigin(1, os.fsencode(library_copy), [OriginFault(pattern, "hang")])
    gateway = OriginGateway(faulty, TIMEOUT)
    outcomes: list[str] = []
    served: dict[Path, bytes] = {}

    async def open_hung() -> None:
        try:
            await gateway.open(os.fsencode(hung_relpath))
            outcomes.append("opened")
        except OriginTimeout:
            outcomes.append("timeout")

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            for _ in range(OPENS):
                nursery.start_soon(open_hung)
            await trio.testing.wait_all_tasks_blocked()
            for path in others:
                handle = await gateway.open(os.fsencode(path.relative_to(library_copy)))
                served[path] = bytes(await gateway.read(handle, path.stat().st_size + 1, 0))
                await gateway.close(handle)
            return trio.current_time()

    try:
        others_done = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.2))
    finally:
        faulty.release()
    assert THREADS_PER_FILE < THREADS_PER_ORIGIN
    assert faulty.hits[f"{pattern}:hang"] <= THREADS_PER_FILE  # threads ever stuck in the file
    assert others_done < TIMEOUT, "the other files waited for threads the hung file held"
    assert served == {path: path.read_bytes() for path in others}
    assert outcomes == ["timeout"] * OPENS
