"""A faulty origin: a real `LocalOrigin` whose opens, reads and listings fail, hang, slow down or
return short data on purpose.

Owns: `FaultyOrigin`, its `OriginFault` rules, and `origin_wrapper`, which turns a list of rules into
the `wrap_origin` that the composition root (`musicfs.daemon.app.assemble`) takes, so the real
daemon builds its origins through it (the chaos launcher, `chaos.launch`, passes it from a plan). Actions:
  - "hang": block until `release()` (or forever: a dead NAS); passes the fault point
    `origin.hang` first, so a test in another process sees in the plan's hit counters
    (`chaos.daemon.DaemonProcess.hits`) that a daemon thread is now stuck, instead of sleeping and hoping,
  - "eio" / "enoent": fail with that errno,
  - "latency": sleep `seconds` first (a slow network),
  - "short": return half of what was asked (a short read),
  - "vanish": the whole origin is gone (listing, open and stat fail with ENOENT).
A rule applies to relative paths matching `pattern` (fnmatch; "*" for all), after its first `after`
matches, at most `count` times, with `probability` drawn from a seeded RNG.
Concurrency: any thread may call the origin at once; counters and the RNG are guarded by one lock,
hangs and sleeps happen outside it. Faulty paths never take the inline page-cache path, so a hang
always happens in a worker thread, as a real dead NAS would.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from musicfs.core.faults import fault_point
from musicfs.origins.base import FoundFile, Origin, WalkProblems
from musicfs.origins.local import PROBE_TIMEOUT, LocalOrigin

ACTIONS = ("hang", "eio", "enoent", "latency", "short", "vanish")


@dataclass(frozen=True, slots=True)
class OriginFault:
    """One rule: what happens to opens and reads of the files whose relative path matches `pattern`."""

    pattern: str
    action: str
    seconds: float = 0.0
    after: int = 0  # pass the first `after` matches through (a file that vanishes under a reader)
    count: int | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"origin fault action must be one of {ACTIONS}, not {self.action!r}")


class FaultyOrigin(LocalOrigin):
    """A LocalOrigin with injected faults."""

    def __init__(
        self,
        origin_id: int,
        root: bytes,
        faults: Sequence[OriginFault],
        seed: int = 0,
        *,
        shared_mount: bool = False,
    ) -> None:
        super().__init__(origin_id, root, shared_mount=shared_mount)
        self.faults = tuple(faults)
        self.hits: dict[str, int] = {}  # faults injected, by "pattern:action"
        self.seen: dict[str, int] = {}  # matching calls, injected or not
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._fd_paths: dict[int, str] = {}

    @classmethod
    def around(cls, origin: LocalOrigin, faults: Sequence[OriginFault], seed: int = 0) -> FaultyOrigin:
        return cls(origin.origin_id, origin.root, faults, seed, shared_mount=origin.shared_mount)

    def release(self) -> None:
        """Let every hung call go on (and every later one pass straight through)."""
        self._released.set()

    def _active(self, relpath: str, actions: tuple[str, ...]) -> list[OriginFault]:
        chosen = []
        with self._lock:
            for fault in self.faults:
                if fault.action not in actions or not fnmatch.fnmatch(relpath, fault.pattern):
                    continue
                key = fault.pattern + ":" + fault.action
                self.seen[key] = self.seen.get(key, 0) + 1
                if self.seen[key] <= fault.after:
                    continue
                used = self.hits.get(key, 0)
                if fault.count is not None and used >= fault.count:
                    continue
                if self._rng.random() >= fault.probability:
                    continue
                self.hits[key] = used + 1
                chosen.append(fault)
        return chosen

    def _inject(self, relpath: str, actions: tuple[str, ...]) -> bool:
        """Apply the matching faults; True when the caller should return short data."""
        short = False
        for fault in self._active(relpath, actions):
            if fault.action == "hang":
                fault_point("origin.hang")
                self._released.wait()
            elif fault.action in ("eio", "vanish", "enoent"):
                code = errno.EIO if fault.action == "eio" else errno.ENOENT
                raise OSError(code, os.strerror(code))
            elif fault.action == "latency":
                time.sleep(fault.seconds)
            elif fault.action == "short":
                short = True
        return short

    def _vanished(self) -> bool:
        return any(fault.action == "vanish" for fault in self.faults) and not self._released.is_set()

    def unavailable_reason(
        self, knows_files: bool, timeout: float = PROBE_TIMEOUT, stop: threading.Event | None = None
    ) -> str | None:
        if self._vanished():
            return f"{os.fsdecode(self.root)}: vanished (injected)"
        return super().unavailable_reason(knows_files, timeout, stop)

    def walk(self, problems: WalkProblems) -> Iterator[FoundFile]:
        if self._vanished():
            raise FileNotFoundError(errno.ENOENT, "origin vanished (injected)")
        yield from super().walk(problems)

    def open(self, relpath: bytes) -> int:
        self._inject(os.fsdecode(relpath), ("hang", "eio", "enoent", "latency", "vanish"))
        fd = super().open(relpath)
        self._fd_paths[fd] = os.fsdecode(relpath)
        return fd

    def read_nowait(self, fd: int, size: int, offset: int) -> bytearray | None:
        path = self._fd_paths.get(fd, "")
        if any(fnmatch.fnmatch(path, fault.pattern) for fault in self.faults):
            return None
        return super().read_nowait(fd, size, offset)

    def _pread(self, fd: int, size: int, offset: int) -> bytes:
        short = self._inject(self._fd_paths.get(fd, ""), ("hang", "eio", "latency", "short", "vanish"))
        data = os.pread(fd, size, offset)
        return data[: max(1, len(data) // 2)] if short and data else data

    def close(self, fd: int) -> None:
        self._fd_paths.pop(fd, None)
        super().close(fd)


def origin_wrapper(faults: Sequence[OriginFault], seed: int = 0) -> Callable[[Origin], Origin]:
    """A `wrap_origin` for the composition root that adds `faults` to every (local) origin."""

    def wrap(origin: Origin) -> Origin:
        assert isinstance(origin, LocalOrigin), "faulty origins wrap local folders only"
        return FaultyOrigin.around(origin, faults, seed)

    return wrap
