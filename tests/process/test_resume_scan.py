"""2.5: a first scan killed halfway is resumed, not started over, and what it had indexed is served
at once by the next start."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from chaos.plan import FaultPlan, FaultRule
from musicfs.demo import generate_bulk
from musicfs.index.scanner import BATCH
from tests.process.conftest import Spawn, assert_clean_log

TRACKS = 1200  # three batches of the scanner


def _count_files(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


@pytest.mark.allow_log(r"the last run did not stop cleanly")
@pytest.mark.failure_mode("2.5")
def test_first_scan_killed_halfway_resumes(spawn: Spawn, tmp_path: Path) -> None:
    origin = tmp_path / "library"
    generate_bulk(origin, TRACKS)
    plan = FaultPlan([FaultRule("scan.apply", "pause", after=1)])  # commit one batch, stop before the next
    first = spawn([origin], plan=plan, ready=False)
    first.wait_paused("scan.apply")
    first.kill9()

    second = spawn([origin])  # mounts at once from the partial index, then rescans in the background
    served_at_start = _count_files(second.mountpoint)
    assert served_at_start == BATCH
    second.wait_log("rescan (start) finished", timeout=60)
    assert _count_files(second.mountpoint) == TRACKS
    report = re.search(r"scan of .*: (\d+) files, (\d+) new", second.log())
    assert report is not None and report.groups() == (str(TRACKS), str(TRACKS - BATCH))
    assert_clean_log(second)
