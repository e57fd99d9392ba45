"""Counters of FUSE requests: how many, how long, how many failed, for status and metrics.

Owns: `RequestStats` (counts and latency histograms by handler, failures by handler and errno) and
`RateLimitedLog`, which turns a storm of identical failures (every read of an offline origin) into
one line per interval with a count of what it held back.
Concurrency: updated and read on the trio thread only (every handler runs there).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


@dataclass(slots=True)
class RequestStats:
    """Requests by handler name, their latency histogram (seconds) and failures by 'handler:errno'."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def observe(self, name: str, seconds: float) -> None:
        self.requests[name] += 1
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        counts = self.buckets.get(name)
        if counts is None:
            counts = self.buckets[name] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


STATS = RequestStats()


class RateLimitedLog:
    """Log a recurring message at most once per `interval` seconds per key, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._held[key] += 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        suffix = f" ({held} more like it in the last {self._interval:g} s)" if held else ""
        self._log.warning(message + suffix, *args)
