"""Loads a fault plan into a Python process at interpreter start, for the chaos tooling only.

Owns: the start-up of a daemon under chaos. `chaos.daemon.DaemonProcess` puts this folder first on
the PYTHONPATH of the `musicfs mount` it spawns and names a plan file in `MUSICFS_CHAOS_PLAN`; Python's
`site` module imports this `sitecustomize` before `musicfs` runs, and it installs the plan as the
process-wide fault hook. Without the variable it does nothing, and a normal `musicfs mount` never has
this folder on its path, so it never loads a plan.

The variable is removed from the environment once read, so child processes do not inherit the plan.
A plan that cannot be loaded stops the process at once (exit 97) with one line on stderr, rather than
letting it run without the faults the test asked for (`site` would only print a warning for an
exception).

This file shadows any other `sitecustomize` (a distribution's or a virtualenv's): after its own
work it finds the next one on `sys.path` and runs it, so that one still takes effect.

Concurrency: runs once, in the main thread, before any other thread exists.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

PLAN_VARIABLE = "MUSICFS_CHAOS_PLAN"
EXIT_BAD_PLAN = 97
_HERE = os.path.dirname(os.path.abspath(__file__))
_REPOSITORY = os.path.dirname(os.path.dirname(_HERE))


def _load_plan(plan_path: str) -> None:
    try:
        import chaos.plan
    except ImportError:  # chaos is not installed in this environment: use the checkout it lives in
        sys.path.append(_REPOSITORY)
        import chaos.plan
    try:
        with open(plan_path, encoding="utf-8") as handle:
            plan = chaos.plan.FaultPlan.from_json(handle.read())
        if plan.state_dir is not None:
            plan.state_dir.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"musicfs chaos: cannot load the fault plan {plan_path}: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_BAD_PLAN)  # SystemExit here would only become a traceback and exit status 1
    chaos.plan.install(plan)
    sys.stderr.write(f"musicfs chaos: fault plan {plan_path} installed in pid {os.getpid()}: ")
    sys.stderr.write("; ".join(plan.describe()) or "no rules")
    sys.stderr.write("\n")
    sys.stderr.flush()


def _run_next_sitecustomize() -> None:
    """Run the `sitecustomize` this one shadows, if there is one further down sys.path."""
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_plan_path = os.environ.pop(PLAN_VARIABLE, "")
if _plan_path:
    _load_plan(_plan_path)
_run_next_sitecustomize()
