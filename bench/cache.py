"""The chunk cache: cached reads beside uncached and direct ones, first bytes, full verification.

Usage: ``python -m bench.cache [--quick] [--workdir DIR] [--rounds N]`` (as root, from the repo root).

1. Throughput: three tracks of 100 MiB (two of 32 MiB with `--quick`; tagged FLAC headers followed by
   noise that is different in every MiB, so no two chunks are alike and none is shared) are read once
   through a mount whose origin has `cache = true`, which fills the cache. A second mount of the same
   cache then reads them again, every kernel cache dropped before each pass, beside a mount of the same
   origin with `cache = false` and direct reads of the origin files (median of `--rounds`). The
   daemon's metrics show that the cached pass read nothing from the origin.
2. Time to first byte: open + read(4096) of 4 MiB tracks never read before, each after dropping the kernel
   caches, from an origin to which a fault plan adds LATENCY to every open and read (a network
   stand-in), with caching on and off (median over the tracks); direct reads of the origin, which pay
   no added latency, for scale; and the same tracks again with caching on, now cached.
3. Verification: `ChunkStore.check(full=True)` of the cache filled in (1), in this process once the
   daemons stopped: with the kernel caches dropped, again with the chunks in the page cache, beside
   hashlib.sha256 (each chunk's name) and the xxh3 block checksums that reads check, alone over 1 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from bench._common import (
    MIB,
    READY_TIMEOUT,
    cpu_seconds,
    drop_caches,
    fresh_dir,
    median_of,
    mounted_path,
    parse_args,
    print_footer,
    print_header,
    print_table,
    require_root,
    run_main,
    run_musicfs,
    timed,
    verdict,
)
from bench.reads import random_rate, throughput
from chaos.daemon import DaemonProcess
from chaos.origins import OriginFault
from chaos.plan import FaultPlan
from musicfs.cache.store import ChunkStore, Watermarks
from musicfs.cache.verify import BLOCK, checks_of

SIZES_MIB = (100, 100, 100)
QUICK_SIZES_MIB = (32, 32)
LATENCY = 0.020  # seconds added to every origin open and read in (2)
TTFB_TRACKS = 9
QUICK_TTFB_TRACKS = 4
TTFB_TRACK_MIB = 4  # larger than any first request, whose end would otherwise cost a read at EOF
FIRST_BYTES = 4096
RANDOM_READS = 10_000  # per track
QUICK_RANDOM_READS = 5_000
SEQUENTIAL_TARGET = 0.8  # cached vs caching off
RANDOM_TARGET = 0.5


def noise_library(workdir: Path, sizes_mib: Sequence[int]) -> Path:
    """Tagged FLAC files padded with fresh random bytes (unlike `big_library`, whose padding repeats
    one MiB, which the content-addressed cache would store once)."""
    root = workdir / "libs" / ("noise-" + "-".join(str(size) for size in sizes_mib))
    done = root.with_name(root.name + ".done")
    if not done.exists():
        from musicfs.demo import generate_bulk

        started = time.perf_counter()
        library = generate_bulk(fresh_dir(root), len(sizes_mib))
        for track, size in zip(library.tracks, sizes_mib, strict=True):
            with open(track.path, "ab") as handle:
                for _ in range(size):
                    handle.write(os.urandom(MIB))
                os.fsync(handle.fileno())
        done.touch()
        print(f"  (wrote {sum(sizes_mib)} MiB in {time.perf_counter() - started:.1f} s: {root})", flush=True)
    return root


@contextlib.contextmanager
def mounted(
    work: Path, name: str, origin: Path, *, cache: bool, cache_dir: Path, plan: FaultPlan | None = None
) -> Iterator[DaemonProcess]:
    """`musicfs mount --config` of one origin with caching on or off; stopped by PID on the way out."""
    mountpoint = fresh_dir(work / f"mnt-cache-{name}")
    state_dir = work / f"state-cache-{name}"
    state_dir.mkdir(parents=True, exist_ok=True)
    config = work / f"cache-{name}.toml"
    config.write_text(
        f"cache_dir = {json.dumps(str(cache_dir))}\npoll_interval = 0\n\n"
        f"[[origin]]\npath = {json.dumps(str(origin))}\ncache = {'true' if cache else 'false'}\n"
    )
    log_path = work / f"cache-{name}.log"
    log_path.unlink(missing_ok=True)
    daemon = DaemonProcess(mountpoint, [], state_dir, log_path, ["--config", str(config)], plan=plan)
    try:
        daemon.start()
        daemon.wait_ready(READY_TIMEOUT)
        yield daemon
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.signal(signal.SIGTERM)  # a clean stop closes the cache (no full check at next open)
            with contextlib.suppress(AssertionError):
                daemon.wait_exit(30)
        daemon.cleanup()


def tracks_of(mountpoint: Path) -> list[Path]:
    return sorted(Path(folder) / name for folder, _, names in os.walk(mountpoint) for name in names)


def metric(daemon: DaemonProcess, name: str) -> int:
    """The sum of the daemon's metric `name` over its labels."""
    text = run_musicfs("metrics", "--state-dir", str(daemon.state_dir)).stdout
    return sum(
        int(float(line.rpartition(" ")[2]))
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def wait_cached(daemon: DaemonProcess, chunks: int, timeout: float = 60.0) -> None:
    """Wait until the background fill has cached `chunks` chunks (so it no longer reads meanwhile)."""
    deadline = time.monotonic() + timeout
    while metric(daemon, "musicfs_cache_chunks") < chunks:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cache did not reach {chunks} chunks within {timeout:g} s")
        time.sleep(0.1)


def cold_throughput(paths: Sequence[Path]) -> float:
    drop_caches()
    return throughput(paths)


def first_byte_ms(path: Path) -> float:
    """Milliseconds of open + read(4096) of `path`, the kernel caches dropped first."""
    drop_caches()
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, FIRST_BYTES)
    finally:
        os.close(fd)
    return (time.perf_counter() - started) * 1000


def median_first_byte_ms(
    paths: Sequence[Path], daemon: DaemonProcess | None = None, *, settle: bool = False
) -> tuple[float, str]:
    """The median first-byte time of `paths`, and the daemon's origin reads per track ("" without one).
    With `settle`, each track's background fill is waited for before the next track is timed."""
    before = metric(daemon, "musicfs_origin_reads_total") if daemon is not None else 0
    times = []
    chunks = 0
    for path in paths:
        times.append(first_byte_ms(path))
        if settle and daemon is not None:
            chunks += -(-os.stat(path).st_size // MIB)
            wait_cached(daemon, chunks)
    if daemon is None:
        return median_of(times), ""
    reads = metric(daemon, "musicfs_origin_reads_total") - before
    return median_of(times), f"{reads / len(paths):.1f}"


def cold_random(paths: Sequence[Path], count: int) -> float:
    drop_caches()
    return random_rate(paths, count)


def measure_throughput(
    work: Path, sizes: Sequence[int], rounds: int, cache_dir: Path, random_reads: int
) -> None:
    library = noise_library(work, sizes)
    fresh_dir(cache_dir)
    with mounted(work, "on", library, cache=True, cache_dir=cache_dir) as daemon:
        shown = tracks_of(daemon.mountpoint)
        origins = [mounted_path(path) for path in shown]
        fill_rate = cold_throughput(shown)  # the background whole-track fill runs meanwhile
        wait_cached(daemon, sum(-(-os.stat(path).st_size // MIB) for path in origins))
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], float] = {}
    with (
        mounted(work, "on", library, cache=True, cache_dir=cache_dir) as cached,
        mounted(work, "off", library, cache=False, cache_dir=cache_dir) as uncached,
    ):
        paths = {"direct": origins, "off": tracks_of(uncached.mountpoint), "on": tracks_of(cached.mountpoint)}
        daemons = {"off": uncached, "on": cached}
        origin_reads = metric(cached, "musicfs_origin_reads_total")
        for number in range(rounds):
            print(f"  throughput round {number + 1} of {rounds}", flush=True)
            for kind, measure in (
                ("sequential", cold_throughput),
                ("random", partial(cold_random, count=random_reads)),
            ):
                for reader, files in paths.items():
                    daemon = daemons.get(reader)
                    before = cpu_seconds(daemon.pid) if daemon is not None else 0.0
                    rates.setdefault((kind, reader), []).append(measure(files))
                    if daemon is not None:
                        used = cpu_seconds(daemon.pid) - before
                        cpu[(kind, reader)] = cpu.get((kind, reader), 0.0) + used
        origin_reads = metric(cached, "musicfs_origin_reads_total") - origin_reads
    rate = {key: median_of(values) for key, values in rates.items()}
    mib = sum(os.stat(path).st_size for path in origins) / MIB * rounds
    thousands = random_reads * len(origins) * rounds / 1000
    rows = []
    for kind, unit, target in (
        ("sequential", mib, SEQUENTIAL_TARGET),
        ("random", thousands, RANDOM_TARGET),
    ):
        direct, off, on = (rate[(kind, reader)] for reader in ("direct", "off", "on"))
        rows += [
            [f"{kind}: direct reads of the origin files", round(direct), "1.00x", "", "", ""],
            [
                f"{kind}: MusicFS, caching off",
                round(off),
                f"{off / direct:.2f}x",
                "1.00x",
                f"{cpu[(kind, 'off')] / unit * 1000:.2f}",
                "",
            ],
            [
                f"{kind}: MusicFS, caching on, chunks cached",
                round(on),
                f"{on / direct:.2f}x",
                f"{on / off:.2f}x",
                f"{cpu[(kind, 'on')] / unit * 1000:.2f}",
                f">= {target}x off: {verdict(on / off, target)}",
            ],
        ]
    rows.append(
        [
            "sequential: MusicFS, caching on, first read (fills the cache; once)",
            round(fill_rate),
            f"{fill_rate / rate[('sequential', 'direct')]:.2f}x",
            f"{fill_rate / rate[('sequential', 'off')]:.2f}x",
            "",
            "",
        ]
    )
    listed = ", ".join(f"{size} MiB" for size in sizes)
    print_table(
        f"1. Reads with the kernel caches dropped before each pass: {len(sizes)} tracks ({listed}), "
        f"sequential (128 KiB reads, MiB/s) and random ({random_reads:,} reads of 4 KiB per track, "
        f"reads/s); median of {rounds} round(s); daemon CPU in ms per MiB (sequential) or per 1,000 "
        "reads (random)",
        ["reader", "rate", "vs direct", "vs caching off", "daemon CPU ms", "target"],
        rows,
    )
    print(f"cached passes: {origin_reads} origin reads")


def measure_first_byte(work: Path, count: int) -> None:
    library = noise_library(work, [TTFB_TRACK_MIB] * count)
    plan = FaultPlan(origin_faults=[OriginFault("*", "latency", seconds=LATENCY)])
    slow_cache = work / "cache-chunks-slow"
    fresh_dir(slow_cache)
    with mounted(work, "slow-off", library, cache=False, cache_dir=slow_cache, plan=plan) as daemon:
        shown = tracks_of(daemon.mountpoint)
        direct, _ = median_first_byte_ms([mounted_path(path) for path in shown])
        off, off_reads = median_first_byte_ms(shown, daemon)
    with mounted(work, "slow-on", library, cache=True, cache_dir=slow_cache, plan=plan) as daemon:
        shown = tracks_of(daemon.mountpoint)
        on_first, on_first_reads = median_first_byte_ms(shown, daemon, settle=True)
        on_cached, on_cached_reads = median_first_byte_ms(shown, daemon)
    latency = LATENCY * 1000
    print_table(
        f"2. Time to first byte: open + read({FIRST_BYTES}) after dropping the kernel caches, median of "
        f"{len(shown)} tracks; the mounts' origin adds {latency:g} ms to every open and read",
        ["reader", "ms", "vs caching off", "origin reads per track"],
        [
            ["direct reads of the origin (no added latency)", direct, f"{direct / off:.2f}x", ""],
            ["MusicFS, caching off, slow origin", off, "1.00x", off_reads],
            [
                "MusicFS, caching on, never-read track, slow origin",
                on_first,
                f"{on_first / off:.2f}x",
                on_first_reads,
            ],
            [
                "MusicFS, caching on, same tracks now cached",
                on_cached,
                f"{on_cached / off:.2f}x",
                on_cached_reads,
            ],
        ],
    )
    print(
        f"(floors: an uncached first byte pays the added latency twice, open and one read: "
        f"{2 * latency:g} ms;\n a cached one once, since opens still go to the origin: {latency:g} ms;\n"
        f" with caching on, a track's first miss also has it read whole into the cache in the background,\n"
        f" {TTFB_TRACK_MIB} chunks of 1 MiB, which is waited for before the next track is timed)"
    )


def measure_check(cache_dir: Path, quick: bool) -> None:
    store = ChunkStore(cache_dir, watermarks=Watermarks(10**12))
    try:
        size = store.usage().bytes
        rows = []
        for title, cold in (
            ("full check, caches dropped", True),
            ("full check, chunks in page cache", False),
        ):
            if cold:
                drop_caches()
            started = time.perf_counter()
            report = store.check(full=True)
            seconds = time.perf_counter() - started
            rows.append([title, round(size / MIB / seconds), report.verified, seconds])
    finally:
        store.close()
    block = os.urandom(MIB)
    count = 64 if quick else 256
    seconds = timed(lambda: [hashlib.sha256(block).digest() for _ in range(count)])
    rows.append(
        ["hashlib.sha256 alone (the chunk's name), 1 MiB buffers", round(count / seconds), count, seconds]
    )
    seconds = timed(lambda: [checks_of(block, BLOCK) for _ in range(count)])
    rows.append(
        ["xxh3-64 per 64 KiB alone (what reads check), 1 MiB", round(count / seconds), count, seconds]
    )
    print_table(
        f"3. Verification of the cache of (1): ChunkStore.check(full=True), in this process "
        f"({size / MIB:,.0f} MiB)",
        ["what", "MiB/s", "chunks", "seconds"],
        rows,
    )


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 3, --quick 1)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    require_root()
    work: Path = args.workdir
    rounds = args.rounds or (1 if args.quick else 3)
    random_reads = QUICK_RANDOM_READS if args.quick else RANDOM_READS
    cache_dir = work / "cache-chunks"
    print_header("MusicFS chunk cache benchmark", args)
    measure_throughput(work, QUICK_SIZES_MIB if args.quick else SIZES_MIB, rounds, cache_dir, random_reads)
    measure_first_byte(work, QUICK_TTFB_TRACKS if args.quick else TTFB_TRACKS)
    measure_check(cache_dir, args.quick)
    print_footer()


if __name__ == "__main__":
    run_main(main)
