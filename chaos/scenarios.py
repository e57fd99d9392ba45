"""Chaos scenarios against the real daemon, and the building blocks tests share with them.

Owns: the catalogue `SCENARIOS` (name -> `Scenario`), `run_scenario` (one scenario in a work folder:
a generated demo library, real `musicfs mount` processes with fault plans, signals, kills, readers,
then PASS or FAIL with what was injected and what was observed), and the pieces process tests reuse:
`ReaderPool` (threads streaming files through the mount and checking every byte), `add_track`,
`mount_state` (asked with statfs, never a cacheable stat), `writer_failure_plan`, `logged_failure`
(the log record whose traceback reaches an injected fault) and `OpenTrap` (an origin folder behind a
bindfs mount frozen with SIGSTOP, so one FUSE request stays in flight as long as a scenario wants).
What the mount must show and which bytes each file must give come from `chaos.oracle`, never from the
daemon.

Every scenario waits on conditions (log lines, notifications, files, counters) with timeouts; none
sleeps and hopes. Whatever happens, `Context.cleanup` kills every daemon it started by PID and lazily
unmounts their mountpoints.
Concurrency: a scenario runs on one thread; `ReaderPool` threads only read files and update their
counters under the pool's condition variable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mutagen.flac

from chaos.daemon import DaemonError, DaemonProcess
from chaos.freeze import freeze
from chaos.mountinfo import mount_at
from chaos.notify import FakeNotifySocket
from chaos.oracle import DEMO_VIEW, demo_bytes, listed
from chaos.plan import FaultPlan, FaultRule
from chaos.signals import send, send_when_logged
from musicfs.demo import DemoLibrary, generate_library

READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 5.0  # musicfs.daemon.service.DRAIN_TIMEOUT, restated: chaos does not rely on internals
READ_CHUNK = 64 * 1024
ADDED_VIEW_PATH = "Chaos Added/Fault Plan/New Track.flac"
TRAP_VIEW_PATH = "Chaos Trap/Frozen Folder/Held Open.flac"
_FLAC: Any = mutagen.flac.FLAC  # mutagen is untyped; calling it through Any keeps mypy --strict quiet


# -- building blocks ----------------------------------------------------------------------------------


def add_track(origin: Path) -> tuple[Path, str]:
    """Add a FLAC track with tags of its own to an origin folder; returns its path and the relative
    path the mount should show it at (`ADDED_VIEW_PATH`) after a rescan."""
    target = origin / "chaos-added" / "new-track.flac"
    _tagged_copy(origin, target, "Chaos Added", "Fault Plan", "New Track")
    return target, ADDED_VIEW_PATH


def _tagged_copy(library: Path, target: Path, artist: str, album: str, title: str) -> None:
    """Copy a FLAC of `library` (one with audio) to `target` with only these tags."""
    source = next(p for p in sorted(library.rglob("*.flac")) if _FLAC(p).info.length > 0)
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, target)
    audio = _FLAC(target)
    audio.delete()
    audio.clear_pictures()
    audio = _FLAC(target)
    if audio.tags is None:
        audio.add_tags()
    audio["artist"] = artist
    audio["album"] = album
    audio["title"] = title
    audio.save()


@dataclass(frozen=True, slots=True)
class ReadError:
    """A reader's failure: when (time.monotonic()), which reader and file, and what went wrong."""

    at: float
    reader: int
    path: Path
    kind: str  # "mismatch" (wrong bytes: always a bug) or an errno name such as "ENOTCONN"
    detail: str


class ReaderPool:
    """Threads that stream files through the mount, whole, in 64 KiB reads, checking every byte.

    Each reader goes through the files in its own seeded order, again and again, until `stop`. A
    reader stops at its first error (after an unmount every read would fail at once).
    """

    def __init__(self, files: dict[Path, bytes], threads: int, seed: int = 0) -> None:
        assert files, "nothing to read"
        self.files = files
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self.done = [0] * threads
        self.alive = [True] * threads
        self.errors: list[ReadError] = []
        self._threads = [
            threading.Thread(
                target=self._read, args=(number, random.Random(seed * 1000 + number)), name=f"reader-{number}"
            )
            for number in range(threads)
        ]

    def __enter__(self) -> ReaderPool:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def reads(self) -> int:
        with self._changed:
            return sum(self.done)

    def mark(self) -> list[int]:
        with self._changed:
            return list(self.done)

    def wait_progress(self, files_each: int, timeout: float, since: list[int] | None = None) -> bool:
        """Wait until every reader has read `files_each` more whole files than at `since` (default:
        now). False at the timeout or as soon as a reader has stopped on an error."""
        with self._changed:
            base = since if since is not None else list(self.done)
            return self._changed.wait_for(
                lambda: (
                    not all(self.alive)
                    or all(done - start >= files_each for done, start in zip(self.done, base, strict=True))
                ),
                timeout,
            ) and all(self.alive)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the readers; True when every one of them finished within `timeout` (none hung)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def errors_before(self, moment: float) -> list[ReadError]:
        with self._changed:
            return [error for error in self.errors if error.at < moment]

    def mismatches(self) -> list[ReadError]:
        with self._changed:
            return [error for error in self.errors if error.kind == "mismatch"]

    def error_summary(self) -> str:
        with self._changed:
            kinds = Counter(error.kind for error in self.errors)
        return ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items())) or "none"

    def _read(self, number: int, rng: random.Random) -> None:
        order = list(self.files)
        try:
            while not self._stop.is_set():
                rng.shuffle(order)
                for path in order:
                    if self._stop.is_set():
                        return
                    error = self._read_one(number, path)
                    with self._changed:
                        if error is not None:
                            self.errors.append(error)
                            return
                        self.done[number] += 1
                        self._changed.notify_all()
        finally:
            with self._changed:
                self.alive[number] = False
                self._changed.notify_all()

    def _read_one(self, number: int, path: Path) -> ReadError | None:
        chunks = []
        try:
            with open(path, "rb", buffering=0) as handle:
                while chunk := handle.read(READ_CHUNK):
                    chunks.append(chunk)
        except OSError as exc:
            kind = errno.errorcode.get(exc.errno or 0, "OSError")
            return ReadError(time.monotonic(), number, path, kind, str(exc))
        data = b"".join(chunks)
        if data != self.files[path]:
            detail = f"{len(data)} bytes read, {len(self.files[path])} expected"
            return ReadError(time.monotonic(), number, path, "mismatch", detail)
        return None


def mount_state(path: Path) -> str:
    """ "none" (nothing mounted), "live" (answers), "dead" (ENOTCONN) or "error: <errno>".

    Asks with statfs, which always reaches the daemon: a stat may be answered from the kernel's
    attribute cache even when the daemon behind the mount is gone.
    """
    if mount_at(path) is None:
        return "none"
    try:
        os.statvfs(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return "dead"
        return f"error: {errno.errorcode.get(exc.errno or 0)}"
    return "live"


class OpenTrap:
    """One folder of an origin served through a bindfs mount that the trap freezes with SIGSTOP (a
    frozen NAS share inside the library), so the daemon's open of the one track in it blocks in a
    worker thread.

    That holds a FUSE request in flight for as long as the test wants: the way to make a shutdown
    drain wait. Build it before the daemon scans the origin (the track is shown at `TRAP_VIEW_PATH`),
    `freeze` it once the daemon serves, open the track, and `wait_stuck` until a daemon thread waits
    for the frozen filesystem (seen in /proc/PID/task/*/wchan); `restore` thaws and unmounts it (and
    so frees a stuck opener); it never raises.
    """

    WCHAN = "request_wait_answer"

    def __init__(self, origin: Path, workdir: Path) -> None:
        self.source = workdir / "trap-source"
        self.mountpoint = origin / "chaos-trap"
        self.source.mkdir(exist_ok=True)
        _tagged_copy(origin, self.source / "held-open.flac", "Chaos Trap", "Frozen Folder", "Held Open")
        self.mountpoint.mkdir(exist_ok=True)
        self._bindfs = subprocess.Popen(
            ["bindfs", "-f", str(self.source), str(self.mountpoint)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while mount_at(self.mountpoint) is None:
            if time.monotonic() > deadline or self._bindfs.poll() is not None:
                self.restore()
                raise DaemonError(f"bindfs did not mount {self.mountpoint} (is bindfs installed?)")
            time.sleep(0.01)

    def freeze(self) -> None:
        freeze(self._bindfs.pid)

    def wait_stuck(self, pid: int, timeout: float) -> bool:
        """Wait until a thread of process `pid` is blocked on the frozen filesystem."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(wchan == self.WCHAN for wchan in _wchans(pid)):
                return True
            time.sleep(0.01)
        return False

    def restore(self) -> None:
        """Thaw bindfs, unmount it and stop it (by its PID); never raises."""
        if self._bindfs.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._bindfs.pid, signal.SIGCONT)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True, timeout=10)
        if self._bindfs.poll() is None:
            self._bindfs.terminate()
            try:
                self._bindfs.wait(5)
            except subprocess.TimeoutExpired:
                self._bindfs.kill()
                self._bindfs.wait()


def _wchans(pid: int) -> list[str]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found = []
    for task in tasks:
        try:
            found.append((task / "wchan").read_text().strip())
        except OSError:
            continue
    return found


class BlockedOpen:
    """A thread opening one file through the mount, which the daemon cannot answer (an `OpenTrap`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcome: str | None = None
        self._thread = threading.Thread(target=self._open, name="blocked-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.read(1)
            self.outcome = "opened"
        except OSError as exc:
            self.outcome = errno.errorcode.get(exc.errno or 0, "OSError")

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) +(?P<logger>\S+) \[(?P<thread>[^\]]*)\]: "
    r"(?P<message>.*)$",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class LoggedFailure:
    """The log record whose traceback reaches a marker (such as an injected fault's message)."""

    level: str
    logger: str
    thread: str
    message: str
    traceback: str

    def describe(self) -> str:
        return f"{self.level} {self.logger} [{self.thread}]: {self.message}"


def logged_failure(text: str, marker: str) -> LoggedFailure | None:
    """Find, in a daemon log (terminal format), the record whose traceback contains `marker`."""
    at = text.find(marker)
    if at < 0:
        return None
    headers = list(_RECORD.finditer(text, 0, at))
    if not headers:
        return None
    header = headers[-1]
    end = text.find("\n", at)
    body = text[header.end() : end if end >= 0 else len(text)]
    start = body.find("Traceback (most recent call last):")
    return LoggedFailure(
        header["level"],
        header["logger"],
        header["thread"],
        header["message"],
        body[start:] if start >= 0 else "",
    )


def wait_appears(path: Path, timeout: float) -> bool:
    """Poll for `path` to exist through the mount (a rescan publishes asynchronously)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def startup_notification(text: str) -> bool:
    """A datagram a daemon may send before READY=1: only STATUS= and EXTEND_TIMEOUT_USEC= lines."""
    return all(line.startswith(("STATUS=", "EXTEND_TIMEOUT_USEC=")) for line in text.splitlines())


def log_problems(text: str) -> tuple[list[str], int]:
    """The ERROR lines of a daemon log and how many tracebacks it holds."""
    errors = [line for line in text.splitlines() if " ERROR " in line or line.startswith("<3>")]
    return errors, text.count("Traceback (most recent call last)")


# -- the runner ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """What a scenario did and saw; PASS when it made at least one check and every check held."""

    scenario: str
    seed: int
    workdir: Path
    injected: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def render(self) -> str:
        lines = [
            f"scenario  {self.scenario}",
            f"seed      {self.seed}",
            f"workdir   {self.workdir}",
            "injected:",
        ]
        lines += [f"  - {item}" for item in self.injected] or ["  (nothing)"]
        lines.append("observed:")
        lines += [f"  - {item}" for item in self.observed] or ["  (nothing)"]
        lines.append("checks:")
        lines += [f"  {'ok  ' if ok else 'FAIL'}  {text}" for ok, text in self.checks]
        lines.append(f"{'PASS' if self.passed else 'FAIL'} {self.scenario} (seed {self.seed})")
        return "\n".join(lines)


class Context:
    """One scenario run: its work folder, demo library, daemons and report."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.seed = report.seed
        self.workdir = report.workdir
        self.mountpoint = self.workdir / "mnt"
        self.state_dir = self.workdir / "state"
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.daemons: list[DaemonProcess] = []
        self.pools: list[ReaderPool] = []
        self.traps: list[OpenTrap] = []
        self._library: DemoLibrary | None = None

    @property
    def library(self) -> DemoLibrary:
        if self._library is None:
            self._library = generate_library(self.workdir / "library", seed=self.seed)
        return self._library

    def origin_copy(self) -> Path:
        """A private copy of the demo library that the scenario may change."""
        destination = self.workdir / "origin"
        if not destination.exists():
            shutil.copytree(self.library.root, destination)
        return destination

    def inject(self, text: str) -> None:
        self.report.injected.append(text)

    def observe(self, text: str) -> None:
        self.report.observed.append(text)

    def check(self, ok: bool, text: str) -> bool:
        self.report.checks.append((bool(ok), text))
        return bool(ok)

    def start(
        self,
        origin: Path,
        *,
        plan: FaultPlan | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        ready: bool = True,
    ) -> DaemonProcess:
        daemon = DaemonProcess(
            self.mountpoint,
            [origin],
            self.state_dir,
            self.workdir / f"daemon{len(self.daemons)}.log",
            extra_args=args,
            env=env,
            plan=plan,
        )
        self.daemons.append(daemon)
        if plan is not None:
            self.inject(f"fault plan for daemon {len(self.daemons) - 1}: {'; '.join(plan.describe())}")
        daemon.start()
        if ready:
            daemon.wait_ready(READY_TIMEOUT)
            self.observe(f"daemon {len(self.daemons) - 1} (pid {daemon.pid}) ready")
        return daemon

    def expected_files(
        self, daemon: DaemonProcess, origin: Path, also_shown: Sequence[str] = ()
    ) -> dict[Path, bytes]:
        """Check that the mount of the demo library at `origin` lists exactly what the oracle says
        (plus `also_shown`, files a scenario added), and return each path of the demo library it must
        show with the bytes it must give (read from the origin)."""
        shown = listed(daemon.mountpoint)
        self.check(
            shown == sorted([*DEMO_VIEW, *also_shown]),
            f"the mount lists the {len(DEMO_VIEW)} files the demo library's tags give ({len(shown)} listed)",
        )
        return demo_bytes(origin, daemon.mountpoint)

    def readers(self, files: dict[Path, bytes], threads: int) -> ReaderPool:
        pool = ReaderPool(files, threads, self.seed)
        self.pools.append(pool)
        return pool.__enter__()

    def send_signal(self, daemon: DaemonProcess, signum: int) -> float:
        """Send a signal, record it as injected, and return when (time.monotonic())."""
        delivery = send(daemon, signum)
        self.inject(f"{delivery.describe()} to pid {daemon.pid}")
        return delivery.at

    def stops_cleanly(self, daemon: DaemonProcess, signum: int = signal.SIGTERM) -> None:
        """Send `signum` and check: exit 0 in time, no mount left, "unmounted" logged."""
        sent = self.send_signal(daemon, signum)
        code = daemon.wait_exit(EXIT_TIMEOUT)
        self.check(code == 0, f"daemon exited with {code} (0 wanted) {time.monotonic() - sent:.2f} s later")
        self.check(mount_state(daemon.mountpoint) == "none", "no mount left at the mountpoint")
        self.check("unmounted" in daemon.log(), "the daemon logged its unmount")

    def log_is_clean(self, daemon: DaemonProcess, errors: int = 0) -> None:
        found, tracebacks = log_problems(daemon.log())
        self.check(
            len(found) == errors and tracebacks == errors,
            f"daemon log: {len(found)} ERROR line(s), {tracebacks} traceback(s) ({errors} expected)",
        )

    def cleanup(self) -> None:
        """Stop readers, kill every daemon by PID, lazily unmount; never raises."""
        for pool in self.pools:
            pool.stop(5)
        for daemon in self.daemons:
            daemon.cleanup()
        for trap in self.traps:
            trap.restore()
        for daemon in self.daemons:
            if daemon.chaos_dir is not None:
                for injection in daemon.injected():
                    self.inject(
                        f"daemon pid {daemon.pid} plan acted: {injection['action']} at "
                        f"{injection['point']} (hit {injection['hit']})"
                    )


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[Context], None]


# -- scenarios -----------------------------------------------------------------------------------------


def _sigterm_idle(ctx: Context) -> None:
    daemon = ctx.start(ctx.library.root)
    ctx.observe(f"{len(ctx.expected_files(daemon, ctx.library.root))} files shown")
    ctx.stops_cleanly(daemon)
    ctx.log_is_clean(daemon)


def _sigterm_under_load(ctx: Context) -> None:
    daemon = ctx.start(ctx.library.root)
    files = ctx.expected_files(daemon, ctx.library.root)
    pool = ctx.readers(files, 8)
    ctx.inject(f"8 reader threads streaming {len(files)} files")
    ctx.check(pool.wait_progress(2, 30), "every reader read 2 whole files before the signal")
    sent = ctx.send_signal(daemon, signal.SIGTERM)
    code = daemon.wait_exit(EXIT_TIMEOUT)
    ctx.observe(f"exit {code} {time.monotonic() - sent:.2f} s after SIGTERM")
    ctx.check(code == 0, f"daemon exited with {code} (0 wanted)")
    ctx.check(pool.stop(10), "every reader finished (none hung on the mount)")
    ctx.observe(f"{pool.reads} whole files read; reader errors after SIGTERM: {pool.error_summary()}")
    ctx.check(not pool.errors_before(sent), f"no read failed before SIGTERM: {pool.errors_before(sent)}")
    ctx.check(not pool.mismatches(), f"no read ever returned wrong bytes: {pool.mismatches()}")
    ctx.check(mount_state(daemon.mountpoint) == "none", "no mount left at the mountpoint")
    ctx.log_is_clean(daemon)


def _stuck_request(ctx: Context) -> tuple[DaemonProcess, BlockedOpen, dict[Path, bytes]]:
    """A daemon on a private origin with one FUSE open held in flight by an `OpenTrap`."""
    origin = ctx.origin_copy()
    trap = OpenTrap(origin, ctx.workdir)
    ctx.traps.append(trap)
    daemon = ctx.start(origin, args=["--read-timeout", "60"])
    files = ctx.expected_files(daemon, origin, also_shown=(TRAP_VIEW_PATH,))
    trapped = daemon.mountpoint / TRAP_VIEW_PATH
    trap.freeze()
    blocked = BlockedOpen(trapped)
    ctx.inject(f"the origin folder of {TRAP_VIEW_PATH} (a bindfs mount) frozen with SIGSTOP, and opened")
    if not trap.wait_stuck(daemon.pid, 10):
        raise DaemonError(
            "no daemon thread got stuck on the frozen folder (is /proc/PID/task/*/wchan readable?)"
        )
    ctx.observe("a daemon worker thread is stuck in the open: one FUSE request in flight")
    return daemon, blocked, files


def _double_signal(ctx: Context) -> None:
    daemon, blocked, files = _stuck_request(ctx)
    pool = ctx.readers(files, 4)
    ctx.inject(f"4 reader threads streaming {len(files)} other files")
    ctx.check(pool.wait_progress(1, 30), "every reader read a whole file before the signals")
    first = ctx.send_signal(daemon, signal.SIGTERM)
    delivery = send_when_logged(daemon, signal.SIGTERM, "shutting down (SIGTERM)", EXIT_TIMEOUT)
    ctx.inject(f"second {delivery.describe()} once 'shutting down' was logged")
    code = daemon.wait_exit(EXIT_TIMEOUT)
    took = time.monotonic() - first
    ctx.observe(f"exit {code} {took:.2f} s after the first SIGTERM")
    ctx.check(delivery.delivered, "the second SIGTERM reached the daemon during its drain")
    ctx.check(code == 0, f"daemon exited with {code} (0 wanted)")
    ctx.check(
        "again during shutdown" in daemon.log(),
        "the daemon logged that the second signal cut the drain short",
    )
    ctx.check(took < DRAIN_TIMEOUT - 1, f"it did not wait out the {DRAIN_TIMEOUT:g} s drain ({took:.2f} s)")
    ctx.check(blocked.join(10), f"the stuck open was answered ({blocked.outcome})")
    ctx.check(pool.stop(10), "every reader finished (none hung on the mount)")
    ctx.check(not pool.errors_before(first), f"no read failed before SIGTERM: {pool.errors_before(first)}")
    ctx.check(not pool.mismatches(), f"no read ever returned wrong bytes: {pool.mismatches()}")
    ctx.check(mount_state(daemon.mountpoint) == "none", "no mount left at the mountpoint")
    ctx.log_is_clean(daemon)


def _drain_deadline(ctx: Context) -> None:
    daemon, blocked, _ = _stuck_request(ctx)
    sent = ctx.send_signal(daemon, signal.SIGTERM)
    code = daemon.wait_exit(EXIT_TIMEOUT)
    took = time.monotonic() - sent
    ctx.observe(f"exit {code} {took:.2f} s after SIGTERM; the stuck open got {blocked.outcome}")
    ctx.check(code == 0, f"daemon exited with {code} (0 wanted)")
    ctx.check(
        DRAIN_TIMEOUT - 0.5 <= took < DRAIN_TIMEOUT + 5,
        f"it waited about the {DRAIN_TIMEOUT:g} s drain deadline for the stuck request ({took:.2f} s)",
    )
    ctx.check(blocked.join(10), f"the stuck open was answered ({blocked.outcome})")
    ctx.check(mount_state(daemon.mountpoint) == "none", "no mount left at the mountpoint")
    ctx.log_is_clean(daemon)


def _late_signal(ctx: Context) -> None:
    daemon = ctx.start(ctx.library.root)
    ctx.send_signal(daemon, signal.SIGTERM)
    delivery = send_when_logged(daemon, signal.SIGTERM, "unmounted", EXIT_TIMEOUT)
    ctx.inject(f"second {delivery.describe()} once the unmount was logged (after the event loop ended)")
    code = daemon.wait_exit(EXIT_TIMEOUT)
    ctx.observe(
        f"exit {code}; second signal {'delivered' if delivery.delivered else 'too late: already exited'}"
    )
    ctx.check(code == 0, f"daemon exited with {code} (0 wanted: a late signal must not kill a clean stop)")
    ctx.check(mount_state(daemon.mountpoint) == "none", "no mount left at the mountpoint")
    ctx.log_is_clean(daemon)


def _check_all_served(ctx: Context, daemon: DaemonProcess, origin: Path, what: str) -> None:
    """Every path of the demo library's view gives the bytes of the origin file the oracle names."""
    expected = demo_bytes(origin, daemon.mountpoint)
    wrong = []
    for path, data in expected.items():
        try:
            if path.read_bytes() != data:
                wrong.append(str(path.relative_to(daemon.mountpoint)))
        except OSError as exc:
            wrong.append(f"{path.relative_to(daemon.mountpoint)}: {exc.strerror}")
    ctx.check(
        not wrong, f"{what}: all {len(expected)} files served with the origin's bytes (wrong: {wrong[:5]})"
    )


def _kill9_restart(ctx: Context) -> None:
    first = ctx.start(ctx.library.root)
    _check_all_served(ctx, first, ctx.library.root, "before the kill")
    inodes = {name: (first.mountpoint / name).stat().st_ino for name in DEMO_VIEW}
    first.kill9()
    ctx.inject(f"SIGKILL to pid {first.pid}")
    state = mount_state(first.mountpoint)
    ctx.observe(f"mountpoint after kill -9: {state}")
    ctx.check(state == "dead", f"kill -9 left a dead mount (ENOTCONN), as a crash would: {state}")
    second = ctx.start(ctx.library.root)
    ctx.check(
        "cleaning a stale" in second.log(), "the restarted daemon logged that it cleaned the stale mount"
    )
    _check_all_served(ctx, second, ctx.library.root, "after the restart")
    again = {name: (second.mountpoint / name).stat().st_ino for name in DEMO_VIEW}
    ctx.check(again == inodes, "every file kept its inode across the crash")
    ctx.stops_cleanly(second)
    ctx.log_is_clean(second)


def writer_failure_plan(point: str, startup_hits: int, seed: int = 0) -> FaultPlan:
    """Raise at the first hit of `point` after the start, then pause at the next one (the retry or
    the next rescan), so the old tree can be checked while that writer stands still."""
    return FaultPlan(
        [
            FaultRule(point, "raise", after=startup_hits, count=1, message="chaos writer-exception"),
            FaultRule(point, "pause", after=startup_hits + 1, count=1),
        ],
        seed,
    )


def _writer_exception(ctx: Context, point: str, startup_hits: int) -> None:
    origin = ctx.origin_copy()
    daemon = ctx.start(origin, plan=writer_failure_plan(point, startup_hits, ctx.seed))
    hits = daemon.hits().get(point, 0)
    if not ctx.check(
        hits == startup_hits, f"{point} was hit {hits} time(s) at start ({startup_hits} expected)"
    ):
        return
    mnt = daemon.mountpoint
    files = ctx.expected_files(daemon, origin)
    pool = ctx.readers(files, 4)
    ctx.inject(f"4 reader threads streaming {len(files)} files")
    ctx.check(pool.wait_progress(1, 30), "every reader read a whole file before the rescan")
    _, shown_at = add_track(origin)
    ctx.inject(f"a new track in the origin, to be shown at {shown_at}")
    ctx.send_signal(daemon, signal.SIGHUP)
    marker = f"InjectedFault: injected fault at '{point}' (hit {startup_hits + 1})"
    daemon.wait_log(marker, 30)
    failure = logged_failure(daemon.log(), marker)
    ctx.observe(f"logged: {failure.describe() if failure else '(no record found)'}")
    ctx.check(failure is not None and failure.level == "ERROR", "the writer's failure is logged at ERROR")
    ctx.check(failure is not None and bool(failure.thread), "the record names a thread")
    ctx.check(
        failure is not None and f'fault_point("{point}")' in failure.traceback,
        "with a traceback down to the fault point",
    )
    ctx.send_signal(daemon, signal.SIGHUP)
    daemon.wait_paused(point, 30, hit=startup_hits + 2)
    ctx.observe(f"the next rescan (a retry, or the second SIGHUP) is paused at {point}")
    ctx.check(pool.wait_progress(2, 30), "every reader went on reading whole files after the failure")
    now = listed(mnt)
    ctx.check(
        now == sorted(DEMO_VIEW), f"the old tree is still served ({len(now)} files, {len(DEMO_VIEW)} before)"
    )
    daemon.release(point)
    added = mnt / shown_at
    ctx.check(wait_appears(added, 30), f"once released, that rescan shows {shown_at}")
    if added.exists():
        ctx.check(
            added.read_bytes() == (origin / "chaos-added" / "new-track.flac").read_bytes(),
            "its bytes are right",
        )
    ctx.check(pool.wait_progress(1, 30), "every reader read on from the new tree")
    ctx.check(pool.stop(10), "every reader finished")
    ctx.observe(f"{pool.reads} whole files read; reader errors: {pool.error_summary()}")
    ctx.check(not pool.errors, f"no reader saw an error: {pool.errors[:3]}")
    ctx.stops_cleanly(daemon)
    ctx.log_is_clean(daemon, errors=1)


def _kill9_mid_rescan(ctx: Context) -> None:
    origin = ctx.origin_copy()
    plan = FaultPlan([FaultRule("scan.apply", "pause", after=1, count=1)], ctx.seed)
    first = ctx.start(origin, plan=plan)
    ctx.expected_files(first, origin)
    _, shown_at = add_track(origin)
    ctx.inject(f"a new track in the origin, to be shown at {shown_at}")
    ctx.send_signal(first, signal.SIGHUP)
    first.wait_paused("scan.apply", 30)
    ctx.observe("the SIGHUP rescan is paused at scan.apply, just before it writes to the index")
    first.kill9()
    ctx.inject(f"SIGKILL to pid {first.pid} while paused in the writer")
    ctx.check(mount_state(first.mountpoint) == "dead", "kill -9 left a dead mount")
    second = ctx.start(origin)
    ctx.check("cleaning a stale" in second.log(), "the restarted daemon cleaned the stale mount")
    _check_all_served(ctx, second, origin, "after the restart")
    added = second.mountpoint / shown_at
    ctx.check(wait_appears(added, 30), f"the rescan at start shows {shown_at}")
    ctx.stops_cleanly(second)
    ctx.log_is_clean(second)


def _ready_order(ctx: Context) -> None:
    with FakeNotifySocket.abstract() as notify:
        ctx.inject(f"NOTIFY_SOCKET={notify.address}")
        daemon = ctx.start(ctx.library.root, env=notify.env(), ready=False)
        ready_index, _ = notify.wait_for("READY=1", READY_TIMEOUT)
        state = mount_state(daemon.mountpoint)
        ctx.check(state == "live", f"when READY=1 arrived the mount answered ({state})")
        ctx.check(os.stat(daemon.mountpoint).st_ino == 1, "the mountpoint is the MusicFS root (inode 1)")
        sent = ctx.send_signal(daemon, signal.SIGTERM)
        stopping_index, stopping = notify.wait_for("STOPPING=1", EXIT_TIMEOUT)
        code = daemon.wait_exit(EXIT_TIMEOUT)
        texts = notify.texts()
        for text in texts:
            ctx.observe(f"notify: {text!r}")
        ctx.check(code == 0, f"daemon exited with {code} (0 wanted)")
        ctx.check(stopping.at >= sent, "STOPPING=1 came after SIGTERM")
        before = texts[:ready_index]
        ctx.check(
            bool(before) and all(startup_notification(text) for text in before),
            "only STATUS= (and EXTEND_TIMEOUT_USEC=) lines came before READY=1",
        )
        ctx.check("STATUS=" in texts[ready_index], "READY=1 carries a STATUS= line")
        ctx.check(ready_index < stopping_index, "READY=1 came before STOPPING=1")
        ctx.check(sum("READY=1" in t for t in texts) == 1, "READY=1 was sent once")
        ctx.check(mount_state(daemon.mountpoint) == "none", "no mount left")
        ctx.log_is_clean(daemon)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in [
        Scenario("sigterm-idle", "SIGTERM an idle mount: exit 0, unmounted, clean log (2.1)", _sigterm_idle),
        Scenario(
            "sigterm-under-load",
            "SIGTERM while 8 threads stream files: exit 0, no hung reader, no wrong bytes (2.1, 2.3)",
            _sigterm_under_load,
        ),
        Scenario(
            "double-signal",
            "a second SIGTERM while the drain waits for a stuck request: cut short, exit 0, no mount (2.1)",
            _double_signal,
        ),
        Scenario(
            "drain-deadline",
            "SIGTERM while a request is stuck: the drain gives up at its deadline, exit 0, no mount (2.3)",
            _drain_deadline,
        ),
        Scenario(
            "late-signal",
            "a second SIGTERM after the unmount, as the process winds down: still exit 0 (2.1)",
            _late_signal,
        ),
        Scenario(
            "kill9-restart",
            "kill -9, then restart on the same mountpoint and state: stale mount cleaned, bytes served (2.7)",
            _kill9_restart,
        ),
        Scenario(
            "writer-exception",
            "raise at scan.apply in a SIGHUP rescan under reads: old tree served, error logged, "
            "next rescan works (2.9, 2.2)",
            lambda ctx: _writer_exception(ctx, "scan.apply", startup_hits=1),
        ),
        Scenario(
            "writer-exception-publish",
            "raise at tree.publish in a SIGHUP rescan under reads: as writer-exception (2.9, 2.2)",
            lambda ctx: _writer_exception(ctx, "tree.publish", startup_hits=2),
        ),
        Scenario(
            "kill9-mid-rescan",
            "kill -9 while a SIGHUP rescan is paused before its index write; a restart serves all "
            "(2.5, 2.7, 2.9)",
            _kill9_mid_rescan,
        ),
        Scenario(
            "ready-order",
            "READY=1 only once the mount answers, STATUS= before it, STOPPING=1 on SIGTERM (2.10)",
            _ready_order,
        ),
    ]
}


def run_scenario(name: str, seed: int, workdir: Path | None = None) -> Report:
    """Run one scenario and return its report; never leaves a daemon or a mount behind.

    Without `workdir`, a temporary folder is used and removed after a PASS (kept after a FAIL, for
    the logs).
    """
    scenario = SCENARIOS[name]
    temporary = workdir is None
    folder = Path(tempfile.mkdtemp(prefix=f"musicfs-chaos-{name}-")) if workdir is None else workdir
    folder.mkdir(parents=True, exist_ok=True)
    report = Report(name, seed, folder.resolve())
    ctx = Context(report)
    try:
        scenario.run(ctx)
    except (DaemonError, TimeoutError, AssertionError, OSError) as exc:
        report.checks.append((False, f"scenario aborted: {type(exc).__name__}: {_first_lines(str(exc))}"))
    except Exception:
        report.checks.append((False, f"scenario crashed:\n{traceback.format_exc()}"))
    finally:
        ctx.cleanup()
    left = [str(d.mountpoint) for d in ctx.daemons if mount_at(d.mountpoint) is not None]
    if left:
        report.checks.append((False, f"mounts left after cleanup: {left}"))
    if not report.passed:
        for number, daemon in enumerate(ctx.daemons):
            tail = daemon.log().splitlines()[-25:]
            report.observed.append(
                f"daemon {number} log ({daemon.log_path}), last lines:\n    " + "\n    ".join(tail)
            )
    if temporary and report.passed and not left:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _first_lines(text: str, count: int = 3) -> str:
    lines = text.splitlines()
    return "\n".join(lines[:count]) + (" ..." if len(lines) > count else "")
