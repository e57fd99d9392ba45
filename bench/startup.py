"""Startup, memory and scanning of a large library: mount time from a known index, RSS per track, scan rates.

Usage: ``python -m bench.startup [--quick] [--tracks N] [--workdir DIR] [--mounts N]`` (as root, from the
repo root).

With a generated library of 100,000 tagged FLAC tracks (5,000 with --quick):
  1. first scan of the new library (`musicfs scan`, caches dropped first): tracks/s and CPU use;
  2. rescans in which nothing changed (`musicfs scan` again, warm, then with caches dropped);
  3. `musicfs mount` from that index: time from spawning the process to a mount whose root answers a
     stat (the median of --mounts mounts), and the daemon's resident memory (VmRSS) once it is ready
     and once its start-up rescan is done, against a daemon serving an empty library;
  4. where a first scan spends its time: cProfile of an in-process first scan of a smaller library
     (the scanning thread only: tag reading runs in a pool of threads, so it shows up as waiting),
     beside tag reading alone on one thread.
The direct and bindfs comparisons of the other benchmarks do not apply here: a plain folder or bindfs
has no index to load and no tags to read.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import time
from pathlib import Path

from bench._common import (
    Command,
    bulk_library,
    drop_caches,
    fresh_dir,
    median_of,
    musicfs_mounted,
    parse_args,
    print_footer,
    print_header,
    print_table,
    require_root,
    run_main,
    run_musicfs,
    status_kib,
    verdict,
    wait_for_log,
)

TRACKS = 100_000
QUICK_TRACKS = 5_000
PROFILE_TRACKS = 10_000
QUICK_PROFILE_TRACKS = 2_000
STARTUP_TARGET = 2.0  # seconds from `musicfs mount` to an answering mount
MEMORY_TARGET = 1024  # bytes per track above an empty daemon
RESCAN_TARGET = 5.0  # seconds for a rescan of 100,000 unchanged tracks
SCAN_SECONDS = re.compile(r" in ([0-9.]+) s$")
LOG_SECONDS = re.compile(r" in ([0-9.]+) s")

# (label, file name ending, function name) of the scan stages shown from the profile.
STAGES = (
    ("whole rescan", "library.py", "rescan"),
    ("read the index's stored files", "store.py", "stored_files"),
    ("walk the origin (scandir + stat)", "local.py", "walk"),
    ("tag reading (waiting on the pool)", "scanner.py", "_read_tags"),
    ("index writes (apply)", "store.py", "apply"),
    ("layout (relayout)", "library.py", "_relayout"),
    ("  of which: read rows back", "store.py", "indexed_files"),
    ("  of which: template layout", "layout.py", "layout"),
    ("  of which: save layout", "store.py", "save_layout"),
    ("publish (index view + tree build)", "library.py", "_publish"),
)


def _seconds_in(text: str, pattern: re.Pattern[str]) -> float:
    found = pattern.search(text)
    if found is None:
        raise RuntimeError(f"no duration in {text!r}")
    return float(found.group(1))


def scans(library: Path, state: Path, tracks: int) -> list[list[object]]:
    """Time a first scan and unchanged rescans with the `musicfs scan` command; return table rows."""
    args = ("scan", "--origin", str(library), "--state-dir", str(state), "--log-level", "WARNING")
    drop_caches()
    first = run_musicfs(*args)
    warm = run_musicfs(*args)
    drop_caches()
    cold = run_musicfs(*args)
    if tracks >= TRACKS:
        rescan_verdict = verdict(warm.seconds, RESCAN_TARGET, higher_is_better=False)
    else:
        rescan_verdict = f"n/a ({tracks:,} tracks)"

    def row(label: str, run: Command, target: str = "", result: str = "") -> list[object]:
        own = _seconds_in(run.stdout.strip(), SCAN_SECONDS)
        rate = f"{tracks / run.seconds:,.0f} tracks/s"
        return [label, run.seconds, own, rate, f"{run.cpu_seconds / run.seconds:.2f} cores", target, result]

    return [
        row("first scan (caches dropped)", first),
        row("rescan, nothing changed", warm, f"< {RESCAN_TARGET:g} s for {TRACKS:,}", rescan_verdict),
        row("rescan, nothing changed, caches dropped", cold),
    ]


def empty_daemon_rss(work: Path) -> int:
    """VmRSS (KiB) of a daemon serving an empty library, once ready."""
    empty = fresh_dir(work / "libs" / "empty")
    state = fresh_dir(work / "state-startup-empty")
    with musicfs_mounted(empty, work / "mnt-startup", state, work / "startup-empty.log") as musicfs:
        wait_for_log(musicfs, "ready in", 30)
        return status_kib(musicfs.pid)


def mounts(library: Path, state: Path, work: Path, count: int) -> list[dict[str, float]]:
    """Mount `count` times from the index in `state`; per mount: times (s) and memory (KiB)."""
    results = []
    for number in range(count):
        log_path = work / f"startup-mount{number}.log"
        with musicfs_mounted(library, work / "mnt-startup", state, log_path) as musicfs:
            ready_rss = status_kib(musicfs.pid)
            loaded = wait_for_log(musicfs, "index loaded in", 30)
            ready = wait_for_log(musicfs, "ready in", 30)
            rescan = wait_for_log(musicfs, "scan of", 300)
            results.append(
                {
                    "spawn to answer": musicfs.ready_seconds,
                    "index load": _seconds_in(loaded, LOG_SECONDS),
                    "mount to ready": _seconds_in(ready, LOG_SECONDS),
                    "start-up rescan": _seconds_in(rescan, LOG_SECONDS),
                    "rss ready": ready_rss,
                    "rss after rescan": status_kib(musicfs.pid),
                    "peak rss": status_kib(musicfs.pid, "VmHWM"),
                }
            )
    return results


def profile_first_scan(work: Path, tracks: int) -> None:
    """Profile a first scan in this process and time tag reading alone; print both."""
    from musicfs.core.config import build_config
    from musicfs.daemon import app
    from musicfs.tags import read_tags

    library = bulk_library(work, tracks)
    state = fresh_dir(work / f"state-profile-{tracks}")
    config = build_config({}, {"origin": [str(library)], "state_dir": str(state)})
    profiler = cProfile.Profile()
    with app.open_instance(config) as instance:
        started = time.perf_counter()
        profiler.runcall(instance.rescan)
        whole = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    cumulative = {
        (Path(path).name, name): values[3]
        for (path, _, name), values in stats.stats.items()  # type: ignore[attr-defined]
    }
    rows: list[list[object]] = [
        [label, cumulative.get((file, name), 0.0), f"{cumulative.get((file, name), 0.0) / whole:.0%}"]
        for label, file, name in STAGES
    ]
    print_table(
        f"Where a first scan of {tracks:,} tracks spends its time (cProfile of the scanning thread; "
        f"{whole:.2f} s, {tracks / whole:,.0f} tracks/s under the profiler)",
        ["stage", "seconds", "share"],
        rows,
    )
    paths = [os.path.join(folder, name) for folder, _, names in os.walk(library) for name in names]
    started = time.perf_counter()
    for path in paths:
        read_tags(path)
    alone = time.perf_counter() - started
    print(
        f"tag reading alone, one thread, files cached: {len(paths):,} files in {alone:.2f} s "
        f"= {len(paths) / alone:,.0f} tracks/s ({alone / len(paths) * 1e6:.0f} us per file)"
    )
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:12]  # type: ignore[attr-defined]
    print_table(
        "Top functions by own time (scanning thread)",
        ["function", "calls", "own s", "cumulative s"],
        [
            [f"{Path(path).name}:{line}({name})", values[1], values[2], values[3]]
            for (path, line, name), values in top
        ],
    )


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracks", type=int, help=f"library size (default {TRACKS:,}, --quick {QUICK_TRACKS:,})"
    )
    parser.add_argument("--mounts", type=int, help="mounts to time (default 3, --quick 1)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    require_root()
    tracks = args.tracks or (QUICK_TRACKS if args.quick else TRACKS)
    count = args.mounts or (1 if args.quick else 3)
    work: Path = args.workdir
    print_header(f"MusicFS startup benchmark, {tracks:,} tracks", args)
    library = bulk_library(work, tracks)
    state = fresh_dir(work / f"state-startup-{tracks}")
    print_table(
        f"Scans of {tracks:,} tracks with `musicfs scan` (wall includes interpreter start-up)",
        ["scan", "wall s", "scan s (own report)", "rate", "CPU", "target", "verdict"],
        scans(library, state, tracks),
    )
    empty_rss = empty_daemon_rss(work)
    results = mounts(library, state, work, count)
    median = {key: median_of([result[key] for result in results]) for key in results[0]}
    per_track = {key: (median[key] - empty_rss) * 1024 / tracks for key in ("rss ready", "rss after rescan")}
    print_table(
        f"`musicfs mount` with a known {tracks:,}-track index (median of {count} mount(s))",
        ["figure", "value", "target", "verdict"],
        [
            [
                "spawn to answering mount (s)",
                median["spawn to answer"],
                f"< {STARTUP_TARGET:g} s",
                verdict(median["spawn to answer"], STARTUP_TARGET, higher_is_better=False),
            ],
            ["  of which: index load, logged (s)", median["index load"], "", ""],
            ["  of which: mount to ready, logged (s)", median["mount to ready"], "", ""],
            ["background start-up rescan, logged (s)", median["start-up rescan"], "", ""],
            ["VmRSS, empty library (MiB)", empty_rss / 1024, "", ""],
            ["VmRSS when ready (MiB)", median["rss ready"] / 1024, "", ""],
            ["VmRSS after the start-up rescan (MiB)", median["rss after rescan"] / 1024, "", ""],
            ["VmHWM, peak (MiB)", median["peak rss"] / 1024, "", ""],
            [
                "bytes per track above empty, when ready",
                round(per_track["rss ready"]),
                f"< {MEMORY_TARGET} B",
                verdict(per_track["rss ready"], MEMORY_TARGET, higher_is_better=False),
            ],
            [
                "bytes per track above empty, after rescan",
                round(per_track["rss after rescan"]),
                f"< {MEMORY_TARGET} B",
                verdict(per_track["rss after rescan"], MEMORY_TARGET, higher_is_better=False),
            ],
        ],
    )
    profile_first_scan(work, QUICK_PROFILE_TRACKS if args.quick else PROFILE_TRACKS)
    print_footer()


if __name__ == "__main__":
    run_main(main)
