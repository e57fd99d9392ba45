"""The chaos launcher: runs `musicfs` with a fault plan, for the chaos tooling only.

Owns: `python -m chaos.launch PLAN_FILE musicfs-arguments...`, which loads the plan, makes it the
process-wide hook of the named fault points (`musicfs.core.faults`), and runs the real `musicfs`
command line with the plan's origin faults passed to the composition root as its `wrap_origin`
(`musicfs.daemon.app.assemble`), so every origin the daemon builds is a `FaultyOrigin`.
`chaos.daemon.DaemonProcess` starts the daemon this way when it has a plan; a normal `musicfs mount`
never loads a plan and never wraps an origin. A plan that cannot be loaded stops the process at
once (exit 97) with one line on stderr, rather than letting it run without the faults the test
asked for.
Concurrency: runs once, on the main thread, before the daemon starts any thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chaos.origins import origin_wrapper
from chaos.plan import FaultPlan, install
from musicfs import cli

EXIT_BAD_PLAN = 97
PLAN_INSTALLED = "musicfs chaos: fault plan"  # the start of the line that says the plan is in


def main(argv: Sequence[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m chaos.launch PLAN_FILE [musicfs arguments...]\n")
        return 2
    plan_path, *rest = argv
    try:
        plan = FaultPlan.from_json(Path(plan_path).read_text(encoding="utf-8"))
        if plan.state_dir is not None:
            plan.state_dir.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"musicfs chaos: cannot load the fault plan {plan_path}: {exc}\n")
        return EXIT_BAD_PLAN
    install(plan)
    sys.stderr.write(f"{PLAN_INSTALLED} {plan_path} installed in pid {os.getpid()}: ")
    sys.stderr.write("; ".join(plan.describe()) or "no rules")
    sys.stderr.write("\n")
    sys.stderr.flush()
    wrap = origin_wrapper(plan.origin_faults, plan.seed) if plan.origin_faults else None
    return cli.main(rest, wrap_origin=wrap)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
