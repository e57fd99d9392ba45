"""docs/resilience.md cannot drift: every row has a test, and every test's failure mode has a row."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| ([0-9][0-9.]*|[a-z]+(?:-[a-z]+)+) \|", re.MULTILINE)
MARKER = re.compile(r"failure_mode\(\"([^\"]+)\"\)")


def _matrix_codes() -> set[str]:
    return set(ROW.findall((ROOT / "docs" / "resilience.md").read_text()))


def _tested_codes() -> dict[str, list[str]]:
    codes: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        for code in MARKER.findall(path.read_text()):
            codes.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return codes


def test_every_matrix_row_has_a_test() -> None:
    untested = _matrix_codes() - _tested_codes().keys()
    assert not untested, f"rows of docs/resilience.md with no failure_mode test: {sorted(untested)}"


def test_every_tested_failure_mode_has_a_row() -> None:
    missing = _tested_codes().keys() - _matrix_codes()
    assert not missing, f"failure modes tested but missing from docs/resilience.md: {sorted(missing)}"
