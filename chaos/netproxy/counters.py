"""The network fault proxy's counters: what tests wait on instead of sleeping.

Owns: `Counters`, an immutable snapshot (to and from JSON-shaped mappings for the control channel),
and `CounterBoard`, the live tally the proxy's event loop writes and any thread reads or waits on.
Concurrency: one lock (inside a condition variable) guards the tally; the writer holds it only to add
and notify, so a waiting reader never slows the proxy for longer than that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Counters:
    """accepted: connections accepted (numbered from 0 in this order); open: accepted and not yet
    closed; bytes_up / bytes_down: bytes delivered to the server / to clients; stalled, reset, cut:
    faults that acted; upstream_failed: connections reset because the server refused the connect."""

    accepted: int = 0
    open: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    stalled: int = 0
    reset: int = 0
    cut: int = 0
    upstream_failed: int = 0

    def to_mapping(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Counters:
        return cls(**{field.name: int(mapping[field.name]) for field in fields(cls)})


class CounterBoard:
    """The live counters: `add` from the proxy, `snapshot` and `wait` from anywhere."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._now = Counters()

    def add(self, **amounts: int) -> None:
        with self._changed:
            self._now = replace(
                self._now, **{name: getattr(self._now, name) + amount for name, amount in amounts.items()}
            )
            self._changed.notify_all()

    def snapshot(self) -> Counters:
        with self._changed:
            return self._now

    def wait(self, predicate: Callable[[Counters], bool], timeout: float) -> Counters:
        """The first snapshot for which `predicate` holds; TimeoutError with the last one if none
        within `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._now), timeout):
                raise TimeoutError(f"network proxy counters not reached within {timeout:g} s: {self._now}")
            return self._now
