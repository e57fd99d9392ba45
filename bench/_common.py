"""Shared helpers of the benchmarks: arguments, libraries, mounts that are always cleaned up, timing, tables.

Owns: the work directory (default /tmp/musicfs-bench), generated libraries (kept between runs, keyed by
size), mounting MusicFS (the real `musicfs mount` process) and bindfs (`bindfs -f -o ro`, so its PID is
ours), dropping the kernel caches, reading a daemon's memory and per-thread read system calls, and
printing tables with targets and verdicts.

Cleanup: every mount is made inside a context manager that, on any exit (an error, Ctrl-C, or SIGTERM or
SIGHUP, which `run_main` turns into KeyboardInterrupt), stops only the process it started, by PID, and
lazily unmounts (`fusermount3 -u -z`) only the mountpoint it created.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from chaos.daemon import MUSICFS, DaemonProcess
from chaos.mountinfo import mount_at

DEFAULT_WORKDIR = Path("/tmp/musicfs-bench")
MIB = 1024 * 1024
READY_TIMEOUT = 600.0
POLL = 0.002


def parse_args(
    description: str, add: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The common options (--quick, --workdir) plus whatever `add` puts on the parser."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in under 30 s")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where libraries, state and mountpoints go (default {DEFAULT_WORKDIR})",
    )
    if add is not None:
        add(parser)
    args = parser.parse_args()
    args.workdir = args.workdir.absolute()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's `main`: SIGTERM and SIGHUP act like Ctrl-C, so every cleanup runs; exit 130."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        main()
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'SIGINT'}); mounts and processes cleaned up", file=sys.stderr)
        sys.exit(130)


def require_root() -> None:
    """Dropping caches needs root; say so at once instead of failing halfway."""
    if os.geteuid() != 0:
        raise SystemExit("the benchmarks need root (they drop the kernel caches)")
    for tool in ("bindfs", "fusermount3"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: install it (apt-get install bindfs fuse3)")


def print_header(title: str, args: argparse.Namespace) -> None:
    """The first lines of a benchmark's output: what runs, where, and how busy the machine is."""
    load = os.getloadavg()[0]
    busy = " (busy: other work is running, figures may be noisy)" if load > 1.0 else ""
    print(f"{title} ({'quick' if args.quick else 'default'} sizes), work dir {args.workdir}", flush=True)
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f}{busy}", flush=True)


def print_footer() -> None:
    """The last line: the load average, which other work running meanwhile would have raised."""
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (this benchmark included)")


def drop_caches() -> None:
    """Write back dirty pages and drop the page cache, dentries and inodes (FUSE mounts' included)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3")


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path` (whatever was there is removed; never a mountpoint in use)."""
    if mount_at(path) is not None:
        raise SystemExit(f"{path} is still mounted; unmount it first (fusermount3 -u -z {path})")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- libraries -------------------------------------------------------------------------------------


def bulk_library(workdir: Path, count: int) -> Path:
    """A library of `count` tagged FLAC tracks (`generate_bulk`), written once and reused by later runs."""
    root = workdir / "libs" / f"bulk-{count}"
    done = root.with_name(root.name + ".done")
    if not done.exists():
        from musicfs.demo import generate_bulk

        started = time.perf_counter()
        generate_bulk(fresh_dir(root), count)
        done.touch()
        print(f"  (generated {count:,} tracks in {time.perf_counter() - started:.1f} s: {root})", flush=True)
    return root


def big_library(workdir: Path, sizes_mib: Sequence[int]) -> Path:
    """Real tagged FLAC files padded to the given sizes (MiB): their tags read, their bytes are noise."""
    name = "big-" + "-".join(str(size) for size in sizes_mib)
    root = workdir / "libs" / name
    done = root.with_name(root.name + ".done")
    if not done.exists():
        from musicfs.demo import generate_bulk

        started = time.perf_counter()
        library = generate_bulk(fresh_dir(root), len(sizes_mib))
        block = os.urandom(MIB)
        for track, size in zip(library.tracks, sizes_mib, strict=True):
            with open(track.path, "ab") as handle:
                for _ in range(size):
                    handle.write(block)
                os.fsync(handle.fileno())
        done.touch()
        print(f"  (wrote {sum(sizes_mib)} MiB in {time.perf_counter() - started:.1f} s: {root})", flush=True)
    return root


# --- mounts ----------------------------------------------------------------------------------------


def wait_mounted(mountpoint: Path, fstype: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll (every 2 ms) until `mountpoint` is a mount of `fstype` whose root answers a stat."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{fstype} exited with {process.returncode} before {mountpoint} was mounted")
        entry = mount_at(mountpoint)
        if entry is not None and entry.fstype == fstype:
            os.stat(mountpoint)
            return
        time.sleep(POLL)
    raise RuntimeError(f"{mountpoint} was not mounted by {fstype} within {timeout:g} s")


def _lazy_unmount(mountpoint: Path) -> None:
    if mount_at(mountpoint) is not None:
        subprocess.run(["fusermount3", "-u", "-z", "--", str(mountpoint)], check=False, capture_output=True)


@dataclass(frozen=True, slots=True)
class MusicFS:
    """A running `musicfs mount`: its mountpoint, PID, log and how long it took to answer."""

    mountpoint: Path
    daemon: DaemonProcess
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def log(self) -> str:
        return self.daemon.log()


@contextlib.contextmanager
def musicfs_mounted(
    origin: Path,
    mountpoint: Path,
    state_dir: Path,
    log_path: Path,
    timeout: float = READY_TIMEOUT,
    env: dict[str, str] | None = None,
) -> Iterator[MusicFS]:
    """Spawn `musicfs mount` (with `env` added to its environment), wait until it answers, and stop it
    (SIGTERM, then SIGKILL) on the way out."""
    fresh_dir(mountpoint)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    daemon = DaemonProcess(mountpoint, [origin], state_dir, log_path, env=env)
    started = time.perf_counter()
    try:
        daemon.start()
        assert daemon.process is not None
        wait_mounted(mountpoint, "fuse.musicfs", daemon.process, timeout)
        yield MusicFS(mountpoint, daemon, time.perf_counter() - started)
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.signal(signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                daemon.wait_exit(30)
        daemon.cleanup()


@contextlib.contextmanager
def bindfs_mounted(source: Path, mountpoint: Path, log_path: Path) -> Iterator[int]:
    """Mount `source` read-only with bindfs in the foreground (so its PID is ours); yield that PID."""
    fresh_dir(mountpoint)
    process: subprocess.Popen[bytes] | None = None
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["bindfs", "-f", "-o", "ro", str(source), str(mountpoint)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_mounted(mountpoint, "fuse", process, 30)
        yield process.pid
    finally:
        _lazy_unmount(mountpoint)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def mounted_path(mounted_file: Path) -> Path:
    """Where a file shown by MusicFS really lives (its `user.musicfs.origin` extended attribute)."""
    return Path(os.fsdecode(os.getxattr(mounted_file, "user.musicfs.origin")))


def read_ahead_kb(path: Path) -> int | None:
    """The kernel read-ahead of the filesystem holding `path`, in KiB (None if it cannot be read)."""
    device = os.stat(path).st_dev
    try:
        return int(Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb").read_text())
    except (OSError, ValueError):
        return None


# --- processes -------------------------------------------------------------------------------------


def status_kib(pid: int, key: str = "VmRSS") -> int:
    """A memory figure of /proc/PID/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def read_syscalls_by_thread(pid: int) -> dict[int, int]:
    """Read system calls (`syscr` of /proc/PID/task/TID/io) made so far by each thread of a process."""
    counts = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "io").read_text().splitlines():
                if line.startswith("syscr:"):
                    counts[int(task.name)] = int(line.split()[1])
    return counts


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by all threads of a process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_log(musicfs: MusicFS, text: str, timeout: float) -> str:
    """Wait until the daemon's log has a line containing `text`; return that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in musicfs.log().splitlines():
            if text in line:
                return line
        time.sleep(0.05)
    raise RuntimeError(f"the daemon did not log {text!r} within {timeout:g} s:\n{musicfs.log()}")


@dataclass(frozen=True, slots=True)
class Command:
    """A finished `musicfs` command: wall seconds, CPU seconds (user + system) and its stdout."""

    seconds: float
    cpu_seconds: float
    stdout: str


def run_musicfs(*args: str) -> Command:
    """Run one `musicfs` command to completion; raise with its stderr if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([MUSICFS, *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"musicfs {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Command(seconds, cpu, result.stdout)


# --- timing and reporting --------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_of(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(value: float, target: float, *, higher_is_better: bool = True) -> str:
    """'met' or 'MISSED' with how far off, for a value against its target."""
    met = value >= target if higher_is_better else value <= target
    if met:
        return "met"
    off = (target - value) / target if higher_is_better else (value - target) / target
    return f"MISSED by {off:.0%}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned table: numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))
    print(flush=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
