"""Fault plans: which named fault points fail, stall or pause, when, and how often.

Owns: `FaultPlan` (a seeded list of `FaultRule`s, JSON in and out), its hook `FaultPlan.hit`, which
`install` plugs into the one production seam, `musicfs.core.faults`, and `InjectedFault`, the exception a
"raise" rule throws. A rule matches fault point names with an fnmatch pattern and then:
  - skips its first `after` matches,
  - acts at most `count` times (None: no limit),
  - acts with `probability` (drawn from the plan's seeded RNG, only for matches past `after` and
    within `count`, so a seed and a sequence of hits always give the same faults),
  - and its action is "raise" (`InjectedFault`), "sleep" (`seconds`), or "pause" (block until
    released; a positive `seconds` bounds the wait).
Every matching rule acts, in order; a "raise" ends the hit.

Cross-process use: with `state_dir` set, every hit updates `hits.json` there atomically (temp file,
then rename): at once for points a rule names, within 20 ms (one write per burst, by a daemon thread)
for the others, such as the "fs.*" point of every FUSE request. A paused thread writes
`paused-<point>` ("<pid> <hit> <thread>") and polls every 10 ms for `release-<point>`. A release
file lets go every thread paused at that point while it exists; the last one to leave deletes the
`paused-` file, then the `release-` file (so a later pause waits again). So a test in another process
can wait for the daemon to stand at an exact point, then kill it or let it go
(`chaos.daemon.DaemonProcess.wait_paused` / `release`).

Concurrency: `hit` may be called from any thread at once. Counting, the RNG and `hits.json` are
guarded by one lock; sleeping happens outside it and pausing waits on a condition variable of it
(which releases it while waiting), so a paused thread never stops others from hitting or releasing
fault points. In-process, `wait_paused` and `release` use that condition variable.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.origins import OriginFault
from musicfs.core.faults import install_hook

ACTIONS = ("raise", "sleep", "pause")
POLL_SECONDS = 0.01
FLUSH_SECONDS = 0.02
HITS_FILE = "hits.json"


class InjectedFault(RuntimeError):
    """The failure a "raise" rule injects at a fault point (never raised by production code)."""

    def __init__(self, point: str, hit: int, message: str = "") -> None:
        self.point = point
        self.hit = hit
        text = f"injected fault at {point!r} (hit {hit})"
        super().__init__(f"{text}: {message}" if message else text)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One rule of a plan; see the module docstring for the meaning of each field."""

    point: str
    action: str = "raise"
    seconds: float = 0.0
    after: int = 0
    count: int | None = None
    probability: float = 1.0
    message: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"fault rule action must be one of {ACTIONS}, not {self.action!r}")
        if not self.point:
            raise ValueError("fault rule point pattern is empty")
        if self.seconds < 0 or self.after < 0 or (self.count is not None and self.count < 0):
            raise ValueError(f"fault rule for {self.point!r}: seconds, after and count must be >= 0")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault rule for {self.point!r}: probability must be within 0..1")

    def describe(self) -> str:
        """One line for reports: "raise at scan.apply after 1 hit(s), at most 1 time(s)"."""
        what = f"sleep {self.seconds:g} s" if self.action == "sleep" else self.action
        parts = [f"{what} at {self.point}"]
        if self.after:
            parts.append(f"after {self.after} hit(s)")
        if self.count is not None:
            parts.append(f"at most {self.count} time(s)")
        if self.probability < 1.0:
            parts.append(f"with probability {self.probability:g}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Injection:
    """A fault that was injected: the point, its hit number, the action, and when (monotonic)."""

    point: str
    hit: int
    action: str
    at: float


@dataclass(slots=True)
class _RuleState:
    matched: int = 0
    acted: int = 0


@dataclass(slots=True)
class FaultPlan:
    """A seeded set of fault rules and the live counters of one process that installed it."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    state_dir: Path | None = None
    origin_faults: list[OriginFault] = field(default_factory=list)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)
    _changed: threading.Condition = field(init=False, repr=False, compare=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _states: list[_RuleState] = field(init=False, repr=False, compare=False)
    _hits: dict[str, int] = field(init=False, repr=False, compare=False)
    _injected: list[Injection] = field(init=False, repr=False, compare=False)
    _paused: dict[str, int] = field(init=False, repr=False, compare=False)
    _releases: dict[str, int] = field(init=False, repr=False, compare=False)
    _unwritten: threading.Event = field(init=False, repr=False, compare=False)
    _flusher: threading.Thread | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._rng = random.Random(self.seed)
        self._states = [_RuleState() for _ in self.rules]
        self._hits = {}
        self._injected = []
        self._paused = {}
        self._releases = {}
        self._unwritten = threading.Event()
        self._flusher = None

    # -- JSON -----------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """Parse a plan; unknown keys and bad values raise ValueError."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a fault plan is a JSON object")
        unknown = set(data) - {"rules", "seed", "state_dir", "origin_faults"}
        if unknown:
            raise ValueError(f"unknown fault plan keys: {sorted(unknown)}")
        rules = []
        for raw in data.get("rules", []):
            if not isinstance(raw, dict):
                raise ValueError(f"a fault rule is a JSON object, not {raw!r}")
            try:
                rules.append(FaultRule(**raw))
            except TypeError as exc:
                raise ValueError(f"bad fault rule {raw!r}: {exc}") from None
        state_dir = data.get("state_dir")
        try:
            origin_faults = [OriginFault(**raw) for raw in data.get("origin_faults", [])]
        except TypeError as exc:
            raise ValueError(f"bad origin fault: {exc}") from None
        return cls(rules, int(data.get("seed", 0)), Path(state_dir) if state_dir else None, origin_faults)

    def to_json(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "state_dir": str(self.state_dir) if self.state_dir else None,
                "rules": [asdict(rule) for rule in self.rules],
                "origin_faults": [asdict(fault) for fault in self.origin_faults],
            },
            indent=2,
        )

    def with_state_dir(self, state_dir: Path | None) -> FaultPlan:
        """A fresh copy of this plan (counters at zero) that reports to `state_dir`."""
        return FaultPlan(list(self.rules), self.seed, state_dir, list(self.origin_faults))

    def describe(self) -> list[str]:
        return [rule.describe() for rule in self.rules]

    # -- the hook -------------------------------------------------------------------------------

    def hit(self, name: str) -> None:
        """The fault hook: count this hit of `name`, then apply every rule that acts on it."""
        actions: list[tuple[FaultRule, int]] = []
        with self._lock:
            number = self._hits.get(name, 0) + 1
            self._hits[name] = number
            ruled = False
            for rule, state in zip(self.rules, self._states, strict=True):
                if not fnmatch.fnmatchcase(name, rule.point):
                    continue
                ruled = True
                state.matched += 1
                if state.matched <= rule.after or (rule.count is not None and state.acted >= rule.count):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                state.acted += 1
                actions.append((rule, number))
                self._injected.append(Injection(name, number, rule.action, time.monotonic()))
            if ruled:
                self._write_hits()
            else:
                self._write_hits_soon()
            self._changed.notify_all()
        for rule, number in actions:
            if rule.action == "raise":
                raise InjectedFault(name, number, rule.message)
            if rule.action == "sleep":
                time.sleep(rule.seconds)
            else:
                self._pause(name, number, rule.seconds)

    def hits(self) -> dict[str, int]:
        """How often each fault point was hit in this process (whether or not a rule acted)."""
        with self._lock:
            return dict(self._hits)

    def injected(self) -> list[Injection]:
        """Every fault injected so far in this process, in order."""
        with self._lock:
            return list(self._injected)

    # -- pausing --------------------------------------------------------------------------------

    def wait_paused(self, point: str, timeout: float) -> None:
        """Block until a thread of this process is paused at `point`; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._paused.get(point, 0) > 0, timeout):
                raise TimeoutError(f"nothing paused at {point!r} within {timeout:g} s; hits: {self._hits}")

    def release(self, point: str) -> None:
        """Let one thread paused (now or later) at `point` go on."""
        with self._changed:
            self._releases[point] = self._releases.get(point, 0) + 1
            self._changed.notify_all()

    def paused(self, point: str) -> int:
        """How many threads of this process are paused at `point` right now."""
        with self._lock:
            return self._paused.get(point, 0)

    def _pause(self, point: str, hit: int, limit: float) -> None:
        deadline = time.monotonic() + limit if limit > 0 else None
        marker = release = None
        with self._changed:
            self._paused[point] = self._paused.get(point, 0) + 1
            if self.state_dir is not None:  # written under the lock: a leaving thread cannot remove it
                marker, release = paused_file(self.state_dir, point), release_file(self.state_dir, point)
                _atomic_write(marker, f"{os.getpid()} {hit} {threading.current_thread().name}\n")
            self._changed.notify_all()
            try:
                while True:
                    if self._releases.get(point, 0) > 0:
                        self._releases[point] -= 1
                        break
                    if release is not None and release.exists():
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    wait = POLL_SECONDS if release is not None else None
                    if deadline is not None:
                        wait = min(wait or limit, max(0.0, deadline - time.monotonic()))
                    self._changed.wait(wait)
            finally:
                self._paused[point] -= 1
                if marker is not None and release is not None and self._paused[point] == 0:
                    marker.unlink(missing_ok=True)
                    release.unlink(missing_ok=True)
                self._changed.notify_all()

    def _write_hits_soon(self) -> None:
        """Have the flusher thread record the counters within FLUSH_SECONDS; the caller holds the lock.

        Points no rule names (every FUSE request is one) are not worth a file write each, least of all
        on the daemon's event loop.
        """
        if self.state_dir is None:
            return
        self._unwritten.set()
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush, name="chaos-hits-flusher", daemon=True)
            self._flusher.start()

    def _flush(self) -> None:
        while True:
            self._unwritten.wait()
            time.sleep(FLUSH_SECONDS)  # gather the hits of a burst into one write
            with self._lock:
                if self._unwritten.is_set():
                    self._write_hits()

    def _write_hits(self) -> None:
        """Record the counters in state_dir/hits.json now; the caller holds the lock."""
        if self.state_dir is None:
            return
        self._unwritten.clear()
        document = {
            "pid": os.getpid(),
            "hits": self._hits,
            "injected": [asdict(injection) for injection in self._injected],
        }
        _atomic_write(self.state_dir / HITS_FILE, json.dumps(document))


def read_hits(state_dir: Path) -> dict[str, Any]:
    """The last `hits.json` a plan wrote in `state_dir` ({} before the first hit)."""
    try:
        document: dict[str, Any] = json.loads((state_dir / HITS_FILE).read_text())
    except FileNotFoundError:
        return {}
    return document


def paused_file(state_dir: Path, point: str) -> Path:
    """The file a thread paused at `point` writes: "<pid> <hit number> <thread name>"."""
    return state_dir / f"paused-{_file_safe(point)}"


def paused_hit(state_dir: Path, point: str) -> int | None:
    """The hit number of the pause now announced at `point` in `state_dir`, or None."""
    try:
        fields = paused_file(state_dir, point).read_text().split(maxsplit=2)
    except FileNotFoundError:
        return None
    return int(fields[1]) if len(fields) >= 2 else None


def release_file(state_dir: Path, point: str) -> Path:
    return state_dir / f"release-{_file_safe(point)}"


def install(plan: FaultPlan) -> None:
    """Make `plan.hit` the process-wide fault hook (replacing any other). The plan's origin faults
    are not global: the chaos launcher (`chaos.launch`) passes them to the composition root."""
    install_hook(plan.hit)


def uninstall() -> None:
    """Remove the process-wide fault hook: fault points do nothing again."""
    install_hook(None)


@contextlib.contextmanager
def installed(plan: FaultPlan) -> Iterator[FaultPlan]:
    """Install `plan` for the duration of a with-block (for in-process tests)."""
    install(plan)
    try:
        yield plan
    finally:
        uninstall()


def plan_of(*rules: FaultRule | Mapping[str, Any], seed: int = 0) -> FaultPlan:
    """A plan from rules or rule dicts: `plan_of({"point": "scan.apply", "count": 1})`."""
    built = [rule if isinstance(rule, FaultRule) else FaultRule(**rule) for rule in rules]
    return FaultPlan(built, seed)


def _file_safe(point: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in point)


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


__all__ = [
    "FaultPlan",
    "FaultRule",
    "InjectedFault",
    "Injection",
    "install",
    "installed",
    "paused_file",
    "paused_hit",
    "plan_of",
    "read_hits",
    "release_file",
    "uninstall",
]
