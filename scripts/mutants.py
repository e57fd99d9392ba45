"""Mutation testing of the resilience-critical modules: how many planted bugs the suite kills.

For each module in `TARGETS`, cosmic-ray (https://cosmic-ray.readthedocs.io) plants one small bug at
a time in the source file in place (an operator flipped, a constant changed, a condition negated),
runs the tests that guard that module (unit, resilience and process tiers alike: the process tests
spawn the daemon from this checkout's editable install, so they run the mutated code too) and
restores the file. A mutant is killed when a test fails. Prints the kill rate per module and the
surviving mutants (file, line, operator), and exits 1 when a module is below the target.

Usage: `tox -e mutants` (or `.venv/bin/python scripts/mutants.py [MODULE ...]`). It takes long (each
mutant runs its tests once); it is not part of the default run. Sessions are kept in
build/mutants/, so an interrupted run goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutants"
TARGET = 0.90
PYTHON = sys.executable

# module -> the tests that guard it (keep each list to what runs in seconds, the tiers where the
# behaviour happens).
TARGETS: dict[str, list[str]] = {
    "src/musicfs/origins/states.py": [
        "tests/resilience/test_health.py",
        "tests/unit/test_status_view.py",
        "tests/process/test_outage.py",
    ],
    "src/musicfs/daemon/lifecycle.py": [
        "tests/process/test_signal_phases.py",
        "tests/process/test_shutdown.py",
    ],
    "src/musicfs/daemon/supervisor.py": [
        "tests/resilience/test_supervisor.py",
        "tests/resilience/test_rescans.py",
    ],
    "src/musicfs/daemon/signals.py": [
        "tests/process/test_signal_phases.py",
        "tests/process/test_mount.py",
    ],
    "src/musicfs/daemon/mounts.py": [
        "tests/unit/test_mountinfo.py",
        "tests/process/test_lifecycle.py",
    ],
    "src/musicfs/daemon/lock.py": [
        "tests/process/test_mount.py",
        "tests/process/test_start_checks.py",
    ],
    "src/musicfs/origins/gateway.py": [
        "tests/resilience/test_hung_origin.py",
        "tests/resilience/test_faulty_origin.py",
        "tests/process/test_cache.py",
    ],
    "src/musicfs/core/deadline.py": [
        "tests/unit/test_deadline_workers.py",
        "tests/resilience/test_origin_probe.py",
    ],
    "src/musicfs/tree/snapshot.py": [
        "tests/unit/test_snapshot.py",
        "tests/resilience/test_state_machine.py",
    ],
    "src/musicfs/cache/verify.py": [
        "tests/unit/test_cache_store.py",
    ],
}
# `X | None` in annotations (strings under `from __future__ import annotations`: every mutation of
# that `|` is unseen by any test) and `dataclass(slots=True)` give equivalent mutants: not counted.
EQUIVALENT_OPERATORS = (
    "core/ReplaceBinaryOperator_BitOr_.*",
    "core/ReplaceTrueWithFalse",
)


def _config(module: str, tests: list[str]) -> Path:
    name = Path(module).stem
    config = WORK / f"{name}.toml"
    command = f"{PYTHON} -m pytest -x -q -p no:cacheprovider -n 2 {' '.join(tests)}"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        "timeout = 300.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    return config


def _cosmic(*args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(PYTHON).with_name(args[0])
    return subprocess.run([str(tool), *args[1:]], cwd=ROOT, capture_output=True, text=True, check=False)


def _skip_equivalent(config: Path, session: Path) -> None:
    """Mark the mutants of EQUIVALENT_OPERATORS as skipped (cosmic-ray's operator filter)."""
    filters = config.with_suffix(".filters.toml")
    patterns = ", ".join(json.dumps(f"^{op}$") for op in EQUIVALENT_OPERATORS)  # regular expressions
    filters.write_text(f"[cosmic-ray.filters.operators-filter]\nexclude-operators = [{patterns}]\n")
    _cosmic("cr-filter-operators", str(session), str(filters)).check_returncode()


def run(module: str, tests: list[str]) -> tuple[int, int, list[str]]:
    """(killed, total, survivors) for one module."""
    config = _config(module, tests)
    session = WORK / f"{Path(module).stem}.sqlite"
    if not session.exists():
        _cosmic("cosmic-ray", "init", str(config), str(session)).check_returncode()
        _skip_equivalent(config, session)
    _cosmic("cosmic-ray", "exec", str(config), str(session)).check_returncode()
    dumped = _cosmic("cosmic-ray", "dump", str(session))
    dumped.check_returncode()
    killed = total = 0
    survivors = []
    for line in dumped.stdout.splitlines():
        item, result = json.loads(line)
        if result is None or result.get("test_outcome") not in ("killed", "survived"):
            continue  # skipped (equivalent) or incompetent (the mutant does not even import)
        total += 1
        if result.get("test_outcome") == "killed":
            killed += 1
        elif result.get("test_outcome") == "survived":
            mutation = item["mutations"][0]
            where = f"{mutation['module_path']}:{mutation['start_pos'][0]}"
            survivors.append(f"{where} {mutation['operator_name']} (occurrence {mutation['occurrence']})")
    return killed, total, survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules of TARGETS to test (default: all)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    chosen = args.modules or list(TARGETS)
    below = 0
    for module in chosen:
        killed, total, survivors = run(module, TARGETS[module])
        rate = killed / total if total else 1.0
        below += rate < TARGET
        print(f"{module}: {killed} of {total} mutants killed ({rate:.0%})")
        for survivor in survivors:
            print(f"    survived: {survivor}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
