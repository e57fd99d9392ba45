"""`python -m chaos`: the developer's chaos scenario runner.

    python -m chaos list
    python -m chaos run NAME [--seed N] [--workdir DIR]

`run` generates a demo library, runs the real `musicfs mount` on a real mount in a work folder with
the scenario's faults, prints what was injected and observed and PASS or FAIL with the seed, and exits
0 on PASS, 1 on FAIL (2 for bad usage). It always kills the daemons it started (by PID) and lazily
unmounts. Without --seed a random seed is drawn and printed, so a failure can be replayed.
Concurrency: single-threaded, apart from the reader threads of a scenario.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from chaos.scenarios import SCENARIOS, run_scenario


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description="Chaos scenarios against musicfs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the scenarios")
    run = commands.add_parser("run", help="run one scenario")
    run.add_argument("name", choices=sorted(SCENARIOS), metavar="NAME")
    run.add_argument("--seed", type=int, default=None, help="seed (default: a random one, printed)")
    run.add_argument(
        "--workdir", type=Path, default=None, help="work folder, kept afterwards (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max(len(name) for name in SCENARIOS)
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<{width}}  {scenario.summary}")
        return 0
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    print(f"running {args.name} with seed {seed}", flush=True)
    report = run_scenario(args.name, seed, args.workdir)
    print(report.render(), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
