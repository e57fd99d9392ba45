"""Full stat walks of a MusicFS mount beside the same walk of the origin directly and through bindfs.

Usage: ``python -m bench.walk [--quick] [--large] [--workdir DIR] [--rounds N]`` (as root, from the repo
root).

For libraries of 1,000 and 10,000 generated tracks (100,000 more with --large; 1,000 and 5,000 with
--quick), every entry is listed (scandir) and lstat'ed, like `find -ls`. Each round drops every cache,
warms the origin's metadata with one direct walk (timed too: "direct, cold"), then walks the tree twice:
the first walk of a mount starts with no kernel dentries or attributes; the second finds what the first
left in the kernel caches (MusicFS hands out 300 s entry and attribute timeouts, bindfs 1 s).
The artist/album/track layout of the generated origin and the tag layout MusicFS shows have the same
number of folders and files, so the walks visit the same number of entries.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench._common import (
    bindfs_mounted,
    bulk_library,
    cpu_seconds,
    drop_caches,
    median_of,
    musicfs_mounted,
    parse_args,
    print_footer,
    print_header,
    print_table,
    read_syscalls_by_thread,
    require_root,
    run_main,
    timed,
    verdict,
)

SIZES = (1_000, 10_000)
LARGE_SIZES = (*SIZES, 100_000)
QUICK_SIZES = (1_000, 5_000)
READERS = ("direct", "bindfs", "musicfs")
FIRST_WALK_TARGET = 2.0  # MusicFS at least 2x bindfs
SECOND_WALK_TARGET = 0.5  # MusicFS at least 0.5x direct


def stat_walk(root: Path) -> int:
    """List every folder below `root` and lstat every entry; return how many entries there were."""
    count = 0
    pending = [os.fspath(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                count += 1
                if stat.S_ISDIR(os.lstat(entry.path).st_mode):
                    pending.append(entry.path)
    return count


@dataclass(slots=True)
class Walks:
    """Per kind of walk ('<reader> <first|second>', 'direct cold'): seconds of each, and daemon work."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def walk(self, key: str, root: Path, daemon: int | None) -> None:
        """Time one walk; for a mount, add the daemon's read syscalls (~ requests) and CPU seconds."""
        if daemon is None:
            self.seconds.setdefault(key, []).append(timed(partial(stat_walk, root)))
            return
        requests, cpu = sum(read_syscalls_by_thread(daemon).values()), cpu_seconds(daemon)
        self.seconds.setdefault(key, []).append(timed(partial(stat_walk, root)))
        self.requests[key] += sum(read_syscalls_by_thread(daemon).values()) - requests
        self.cpu[key] += cpu_seconds(daemon) - cpu


def measure(library: Path, roots: dict[str, Path], daemons: dict[str, int | None], rounds: int) -> Walks:
    """Every kind of walk, `rounds` times; each round starts from dropped caches and a warm origin."""
    walks = Walks()
    for _ in range(rounds):
        for reader in READERS:
            drop_caches()
            walks.walk("direct cold", library, None)
            walks.walk(f"{reader} first", roots[reader], daemons[reader])
            walks.walk(f"{reader} second", roots[reader], daemons[reader])
    return walks


def walk_library(work: Path, tracks: int, rounds: int) -> list[list[object]]:
    """Mount one library both ways, walk it, and return its rows of the results table."""
    library = bulk_library(work, tracks)
    with ExitStack() as stack:
        musicfs = stack.enter_context(
            musicfs_mounted(
                library, work / "mnt-walk-musicfs", work / f"state-walk-{tracks}", work / "walk-musicfs.log"
            )
        )
        bindfs_root = work / "mnt-walk-bindfs"
        bindfs = stack.enter_context(bindfs_mounted(library, bindfs_root, work / "walk-bindfs.log"))
        roots = {"direct": library, "bindfs": bindfs_root, "musicfs": musicfs.mountpoint}
        entries = {reader: stat_walk(root) for reader, root in roots.items()}
        walks = measure(library, roots, {"direct": None, "bindfs": bindfs, "musicfs": musicfs.pid}, rounds)
    times = {key: median_of(values) for key, values in walks.seconds.items()}
    first = times["bindfs first"] / times["musicfs first"]
    second = times["direct second"] / times["musicfs second"]

    def row(label: str, key: str, against: str = "", result: str = "") -> list[object]:
        count = entries[key.split()[0]]
        requests = walks.requests.get(key, 0)
        per_request = f"{walks.cpu[key] / requests * 1e6:.0f}" if requests else ""
        return [
            f"{tracks:,}",
            label,
            count,
            times[key] * 1000,
            round(count / times[key]),
            f"{requests / rounds:,.0f}" if requests else "",
            per_request,
            against,
            result,
        ]

    return [
        row("direct, cold", "direct cold"),
        row("direct", "direct second"),
        row("bindfs, first", "bindfs first"),
        row("bindfs, second", "bindfs second"),
        row(
            "musicfs, first",
            "musicfs first",
            f"{first:.2f}x bindfs (>= {FIRST_WALK_TARGET:g}x)",
            verdict(first, FIRST_WALK_TARGET),
        ),
        row(
            "musicfs, second",
            "musicfs second",
            f"{second:.2f}x direct (>= {SECOND_WALK_TARGET:g}x)",
            verdict(second, SECOND_WALK_TARGET),
        ),
    ]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--large", action="store_true", help="add a 100,000-track library")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 1)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    require_root()
    sizes = QUICK_SIZES if args.quick else LARGE_SIZES if args.large else SIZES
    rounds = args.rounds or (1 if args.quick else 5)
    print_header("MusicFS walk benchmark", args)
    rows = []
    for tracks in sizes:
        print(f"  {tracks:,} tracks", flush=True)
        rows += walk_library(args.workdir, tracks, rounds)
    print_table(
        f"Full stat walks (scandir + lstat of every entry); median of {rounds} round(s)",
        [
            "tracks",
            "walk",
            "entries",
            "ms",
            "entries/s",
            "requests",
            "CPU us/req",
            "measured vs target",
            "verdict",
        ],
        rows,
    )
    print(
        "requests: reads of /dev/fuse by the FUSE daemon per walk (one per request);\n"
        "CPU us/req: the daemon's user+system CPU time per request (10 ms clock ticks, summed over rounds)"
    )
    print_footer()


if __name__ == "__main__":
    run_main(main)
