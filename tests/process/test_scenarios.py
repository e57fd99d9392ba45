"""The chaos scenarios that have no test of their own, run through the developers' runner exactly as
`python -m chaos run NAME --seed N` runs them: each spawns the real daemon on a real mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = [
    pytest.param("double-signal", marks=pytest.mark.failure_mode("2.1")),
    pytest.param("late-signal", marks=pytest.mark.failure_mode("2.1")),
    pytest.param("drain-deadline", marks=pytest.mark.failure_mode("2.3")),
    pytest.param("kill9-mid-rescan", marks=pytest.mark.failure_mode("2.5")),
    pytest.param("writer-exception-publish", marks=pytest.mark.failure_mode("2.9")),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_passes(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "run", name, "--seed", "7", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"PASS {name} (seed 7)" in done.stdout
