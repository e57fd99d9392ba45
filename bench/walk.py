"""Full stat walks of MusicFS mounts beside the same walk of the origin directly and through bindfs.

Usage: ``python -m bench.walk [--quick] [--large] [--workdir DIR] [--rounds N]`` (as root, from the repo
root).

MusicFS is mounted twice, side by side: with listings kept by the kernel (`MUSICFS_LISTINGS=kernel`,
which needs the patched pyfuse3 that set-up builds) and with listings asked of the daemon at every
open (`MUSICFS_LISTINGS=daemon`, what stock pyfuse3 allows).

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
import re
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
    wait_for_log,
)
from musicfs.daemon import control

SIZES = (1_000, 10_000)
LARGE_SIZES = (*SIZES, 100_000)
QUICK_SIZES = (1_000, 5_000)
# The two MusicFS mounts: listings kept by the kernel (patched pyfuse3) and asked of the daemon (stock).
MODES = {"kernel": "kernel-cached", "daemon": "daemon"}
READERS = ("direct", "bindfs", *MODES)
FIRST_WALK_TARGET = 2.0  # MusicFS at least 2x bindfs
SECOND_WALK_TARGET = 0.7  # MusicFS (kernel-cached listings) at least 0.7x direct


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

    def walk(self, key: str, root: Path, daemon: Daemon | None) -> None:
        """Time one walk; for a mount, add the requests and CPU seconds it cost the daemon."""
        if daemon is None:
            self.seconds.setdefault(key, []).append(timed(partial(stat_walk, root)))
            return
        requests, cpu = daemon.requests(), cpu_seconds(daemon.pid)
        self.seconds.setdefault(key, []).append(timed(partial(stat_walk, root)))
        self.requests[key] += daemon.requests() - requests
        self.cpu[key] += cpu_seconds(daemon.pid) - cpu


@dataclass(frozen=True, slots=True)
class Daemon:
    """A FUSE daemon of a walk, and how its requests are counted: MusicFS's own counters (read from
    its control socket, which costs no FUSE request), else its reads of /dev/fuse (one per request,
    from /proc)."""

    pid: int
    control_socket: Path | None = None

    def requests(self) -> int:
        if self.control_socket is None:
            return sum(read_syscalls_by_thread(self.pid).values())
        text = control.request(self.control_socket, "metrics")["text"]
        return sum(int(m[1]) for m in re.finditer(r"^musicfs_requests_total\{[^}]*\} (\d+)$", text, re.M))


def measure(library: Path, roots: dict[str, Path], daemons: dict[str, Daemon | None], rounds: int) -> Walks:
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
    """Mount one library with bindfs and both MusicFS modes, walk it, and return its rows of the table."""
    library = bulk_library(work, tracks)
    roots: dict[str, Path] = {"direct": library, "bindfs": work / "mnt-walk-bindfs"}
    daemons: dict[str, Daemon | None] = {"direct": None}
    with ExitStack() as stack:
        bindfs = stack.enter_context(bindfs_mounted(library, roots["bindfs"], work / "walk-bindfs.log"))
        daemons["bindfs"] = Daemon(bindfs)
        for mode, name in MODES.items():
            state_dir = work / f"state-walk-{tracks}-{mode}"
            musicfs = stack.enter_context(
                musicfs_mounted(
                    library,
                    work / f"mnt-walk-{mode}",
                    state_dir,
                    work / f"walk-{mode}.log",
                    env={"MUSICFS_LISTINGS": mode},
                )
            )
            wait_for_log(musicfs, f"listings: {name} (", 30)
            roots[mode] = musicfs.mountpoint
            daemons[mode] = Daemon(musicfs.pid, state_dir / control.SOCKET_NAME)
        entries = {reader: stat_walk(root) for reader, root in roots.items()}
        walks = measure(library, roots, daemons, rounds)
    times = {key: median_of(values) for key, values in walks.seconds.items()}

    def row(label: str, key: str, against: str = "", result: str = "") -> list[object]:
        count = entries[key.split()[0]]
        requests = walks.requests.get(key, 0)
        cpu = walks.cpu.get(key, 0.0)
        return [
            f"{tracks:,}",
            label,
            count,
            times[key] * 1000,
            round(count / times[key]),
            f"{requests / rounds:,.0f}" if daemons[key.split()[0]] else "",
            f"{cpu / rounds * 1000:.0f}" if daemons[key.split()[0]] else "",
            f"{cpu / requests * 1e6:.0f}" if requests else "",
            against,
            result,
        ]

    rows = [
        row("direct, cold", "direct cold"),
        row("direct", "direct second"),
        row("bindfs, first", "bindfs first"),
        row("bindfs, second", "bindfs second"),
    ]
    for mode, name in MODES.items():
        first = times["bindfs first"] / times[f"{mode} first"]
        second = times["direct second"] / times[f"{mode} second"]
        over_bindfs = times["bindfs second"] / times[f"{mode} second"]
        rows.append(
            row(
                f"musicfs {name}, first",
                f"{mode} first",
                f"{first:.2f}x bindfs (>= {FIRST_WALK_TARGET:g}x)",
                verdict(first, FIRST_WALK_TARGET),
            )
        )
        kept = mode == "kernel"  # the target is for what set-up installs; daemon listings are the fallback
        rows.append(
            row(
                f"musicfs {name}, second",
                f"{mode} second",
                f"{second:.2f}x direct{f' (>= {SECOND_WALK_TARGET:g}x)' if kept else ''}, "
                f"{over_bindfs:.2f}x bindfs",
                verdict(second, SECOND_WALK_TARGET) if kept else "(stock pyfuse3)",
            )
        )
    return rows


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
            "CPU ms",
            "CPU us/req",
            "measured vs target",
            "verdict",
        ],
        rows,
    )
    print(
        "requests: FUSE requests per walk (MusicFS's own counters; for bindfs its reads of /dev/fuse);\n"
        "CPU ms: the daemon's user+system CPU time per walk; CPU us/req: the same per request\n"
        "(10 ms clock ticks, summed over rounds)"
    )
    print_footer()


if __name__ == "__main__":
    run_main(main)
