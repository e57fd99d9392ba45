"""Read throughput of MusicFS beside the same reads done directly on the origin and through bindfs.

Usage: ``python -m bench.reads [--quick] [--workdir DIR] [--rounds N]`` (as root, from the repo root).

A few large tracks (real tagged FLAC headers padded with noise to 200-500 MiB) are read four ways, each
the median of `--rounds` rounds:
  1. first sequential read, 128 KiB at a time, with the origin already in the page cache;
  2. first sequential read after dropping every cache (origin cold too);
  3. a re-read of the same, unchanged track (the mount's own page cache kept: keep_cache);
  4. random, 4 KiB-aligned 4 KiB reads of the track just read.
MusicFS shows each track at a path made from its tags; the origin and bindfs paths come from the
`user.musicfs.origin` extended attribute of the mounted file.

The split of MusicFS reads between the event loop (preadv2 RWF_NOWAIT from the page cache) and worker
threads is inferred from per-thread read system calls (/proc/PID/task/TID/io `syscr`): the loop thread
does one read of /dev/fuse per request plus one preadv2 try per READ; workers do one pread per threaded
read.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench._common import (
    MIB,
    big_library,
    bindfs_mounted,
    drop_caches,
    median_of,
    mounted_path,
    musicfs_mounted,
    parse_args,
    print_footer,
    print_header,
    print_table,
    read_ahead_kb,
    read_syscalls_by_thread,
    require_root,
    run_main,
    timed,
    verdict,
)

CHUNK = 128 * 1024
PAGE = 4096
READERS = ("direct", "bindfs", "musicfs")
SIZES_MIB = (200, 300, 500)
QUICK_SIZES_MIB = (48, 64)
RANDOM_READS = 40_000
QUICK_RANDOM_READS = 10_000


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    target: str  # what the issue asks, as shown in the table
    ratio_of: str  # the reader MusicFS is compared with for the target
    minimum: float


SCENARIOS = (
    Scenario("warm", "first read, origin cached (MiB/s)", ">= 1.0x bindfs", "bindfs", 1.0),
    Scenario("cold", "first read, caches dropped (MiB/s)", ">= 0.7x direct", "direct", 0.7),
    Scenario("reread", "re-read, page cache kept (MiB/s)", ">= 0.6x direct", "direct", 0.6),
    Scenario("random", "random 4 KiB reads (reads/s)", ">= 0.8x direct", "direct", 0.8),
)


@dataclass(slots=True)
class ThreadSplit:
    """Read system calls of the MusicFS daemon during one scenario, summed over rounds."""

    loop: int = 0
    workers: int = 0

    def add(self, before: dict[int, int], after: dict[int, int], pid: int) -> None:
        for tid, count in after.items():
            delta = count - before.get(tid, 0)
            if tid == pid:
                self.loop += delta
            else:
                self.workers += delta


@dataclass(slots=True)
class Results:
    rates: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    split: dict[str, ThreadSplit] = field(default_factory=dict)

    def add(self, scenario: str, reader: str, rate: float) -> None:
        self.rates.setdefault((scenario, reader), []).append(rate)

    def rate(self, scenario: str, reader: str) -> float:
        return median_of(self.rates[(scenario, reader)])


def read_sequentially(path: Path) -> int:
    """Read a whole file 128 KiB at a time into one buffer; return the bytes read."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(view):
            total += count
    return total


def read_randomly(path: Path, count: int, seed: int) -> None:
    """`count` preads of 4 KiB at random page-aligned offsets (the same offsets for every reader)."""
    pages = os.stat(path).st_size // PAGE
    offsets = [page * PAGE for page in random.Random(seed).choices(range(pages), k=count)]
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in offsets:
            os.pread(fd, PAGE, offset)
    finally:
        os.close(fd)


def throughput(paths: Sequence[Path]) -> float:
    """MiB/s of reading every file of `paths` sequentially, one after the other."""
    seconds = sum(timed(partial(read_sequentially, path)) for path in paths)
    return sum(os.stat(path).st_size for path in paths) / MIB / seconds


def random_rate(paths: Sequence[Path], count: int) -> float:
    """Random 4 KiB reads per second over `paths` (`count` reads in each)."""
    seconds = sum(timed(partial(read_randomly, path, count, seed)) for seed, path in enumerate(paths))
    return count * len(paths) / seconds


def run_round(paths: dict[str, list[Path]], results: Results, random_reads: int, daemon_pid: int) -> None:
    """One round of every scenario for every reader, in a fixed order."""

    def measured(scenario: str, reader: str, action: Callable[[], float]) -> None:
        before = read_syscalls_by_thread(daemon_pid)
        results.add(scenario, reader, action())
        if reader == "musicfs":
            split = results.split.setdefault(scenario, ThreadSplit())
            split.add(before, read_syscalls_by_thread(daemon_pid), daemon_pid)

    for reader in READERS:
        files = paths[reader]
        drop_caches()
        for origin in paths["direct"]:
            read_sequentially(origin)
        measured("warm", reader, partial(throughput, files))
        drop_caches()
        measured("cold", reader, partial(throughput, files))
        measured("reread", reader, partial(throughput, files))
        measured("random", reader, partial(random_rate, files, random_reads))


def report(
    results: Results, sizes_mib: Sequence[int], read_ahead: dict[str, int | None], rounds: int
) -> None:
    rows = []
    for scenario in SCENARIOS:
        rate = {reader: results.rate(scenario.key, reader) for reader in READERS}
        ratio = rate["musicfs"] / rate[scenario.ratio_of]
        rows.append(
            [
                scenario.title,
                round(rate["direct"]),
                round(rate["bindfs"]),
                round(rate["musicfs"]),
                f"{rate['musicfs'] / rate['direct']:.2f}x",
                f"{rate['musicfs'] / rate['bindfs']:.2f}x",
                scenario.target,
                verdict(ratio, scenario.minimum),
            ]
        )
    sizes = ", ".join(f"{size} MiB" for size in sizes_mib)
    print_table(
        f"Reads of {len(sizes_mib)} tracks ({sizes}); median of {rounds} round(s)",
        ["scenario", "direct", "bindfs", "musicfs", "mfs/direct", "mfs/bindfs", "target", "verdict"],
        rows,
    )
    shown = ", ".join(f"{name} {kb} KiB" for name, kb in read_ahead.items())
    print(f"kernel read-ahead: {shown}")

    split_rows = []
    for scenario in SCENARIOS:
        split = results.split.get(scenario.key, ThreadSplit())
        requests = max(split.loop // 2, split.workers)
        inline = f"{1 - split.workers / requests:.0%}" if requests else "n/a (no requests)"
        split_rows.append([scenario.title, split.loop, split.workers, f"~{requests:,}", inline])
    print_table(
        "MusicFS reads: event loop (inline page-cache reads) vs worker threads, all rounds",
        ["scenario", "loop-thread read syscalls", "worker preads", "READ requests", "inline share"],
        split_rows,
    )
    print(
        "(inferred: the loop thread makes one read of /dev/fuse per request and one preadv2 try per READ,\n"
        " so READ requests ~ loop syscalls / 2; every worker pread is one threaded read)"
    )


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 1)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    require_root()
    sizes = QUICK_SIZES_MIB if args.quick else SIZES_MIB
    rounds = args.rounds or (1 if args.quick else 5)
    random_reads = QUICK_RANDOM_READS if args.quick else RANDOM_READS
    work: Path = args.workdir
    print_header("MusicFS read benchmark", args)
    library = big_library(work, sizes)
    with ExitStack() as stack:
        musicfs = stack.enter_context(
            musicfs_mounted(
                library, work / "mnt-reads-musicfs", work / "state-reads", work / "reads-musicfs.log"
            )
        )
        bindfs_root = work / "mnt-reads-bindfs"
        stack.enter_context(bindfs_mounted(library, bindfs_root, work / "reads-bindfs.log"))
        shown = sorted(Path(d) / f for d, _, fs in os.walk(musicfs.mountpoint) for f in fs)
        origins = [mounted_path(path) for path in shown]
        paths = {
            "direct": origins,
            "bindfs": [bindfs_root / origin.relative_to(library) for origin in origins],
            "musicfs": shown,
        }
        read_ahead = {reader: read_ahead_kb(paths[reader][0]) for reader in READERS}
        results = Results()
        for number in range(rounds):
            print(f"  round {number + 1} of {rounds}", flush=True)
            run_round(paths, results, random_reads, musicfs.pid)
    report(results, [os.stat(path).st_size // MIB for path in origins], read_ahead, rounds)
    print_footer()


if __name__ == "__main__":
    run_main(main)
