"""What the network fault proxy does to traffic, and the seeded draw of each connection's fate.

Owns: `Faults`, the immutable settings in force (validated on construction; to and from JSON-shaped
mappings for the control channel and the command line), `Fate`, what one connection will suffer, and
`draw_fate` / `fate_rng` / `jitter_rng`, the seeded random choices. Pure: no sockets, no clock.

Settings (all off by default):
  - `latency`: seconds every chunk waits in each direction (so a request-response round trip gains
    twice this); the proxy is a delay line, not a stop-and-wait, so a stream keeps its throughput.
  - `jitter`: up to this many seconds more per chunk, drawn uniformly; chunks never overtake each
    other (a delayed chunk holds back the ones behind it, as TCP would).
  - `bandwidth`: bytes per second in each direction, shared by all connections (a link, not a
    per-connection quota); 0 is no cap.
  - `stall`, `reset`, `cut`: the probability that a connection is stalled (nothing more passes either
    way, ever; the client must give up), reset (RST: the client sees ECONNRESET) or cut (a clean EOF
    to the client: a short response). At most one of them per connection; they add up to at most 1.
  - `after`: how many bytes from the server a doomed connection passes before its fault acts, drawn
    uniformly from this (low, high) range; 0 acts at once (at accept: the server is never contacted).
  - `blackhole`: the path is down: connects do not complete and open connections pass nothing either
    way; the bytes are held, not lost, and flow on once it is cleared (as TCP's retransmissions would).

Seeding: every connection draws its fate from its own RNG (`fate_rng(seed, number)`, `number` counting
accepted connections from 0), so the same seed gives the same fates to the same connections whatever
the others did. A fate is drawn when a connection is accepted and again for every open connection
whose fate has not yet acted when the fault settings change (so new settings reach kept-alive
connections too). Jitter has its own RNG per connection and direction, one draw per chunk; how TCP
splits a stream into chunks is not under the proxy's control, so jitter repeats only roughly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

KINDS = ("stall", "reset", "cut")


@dataclass(frozen=True, slots=True)
class Faults:
    """The proxy's settings; see the module docstring for each field."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: int = 0
    stall: float = 0.0
    reset: float = 0.0
    cut: float = 0.0
    after: tuple[int, int] = (0, 0)
    blackhole: bool = False

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if self.bandwidth < 0:
            raise ValueError(f"bandwidth must be bytes per second >= 0 (0: no cap), not {self.bandwidth!r}")
        for name in KINDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability within 0..1, not {value!r}")
        if self.stall + self.reset + self.cut > 1.0 + 1e-9:
            raise ValueError("stall, reset and cut are exclusive: their probabilities must add up to <= 1")
        low, high = self.after
        if not 0 <= low <= high:
            raise ValueError(f"after must be a byte count >= 0 or a range low <= high, not {self.after!r}")

    def fates_differ(self, other: Faults) -> bool:
        """True when `other` draws fates differently (a change of latency alone does not)."""
        return any(getattr(self, name) != getattr(other, name) for name in (*KINDS, "after"))

    def to_mapping(self) -> dict[str, Any]:
        mapping = {field.name: getattr(self, field.name) for field in fields(self)}
        mapping["after"] = list(self.after)
        return mapping

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Settings from a JSON-shaped mapping; fields it leaves out come from `base` (default: none
        set). ValueError naming the field for anything unknown, of the wrong type or impossible."""
        known = {field.name for field in fields(cls)}
        for name in mapping:
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, value in mapping.items():
            if name == "blackhole":
                if not isinstance(value, bool):
                    raise ValueError(f"blackhole must be true or false, not {value!r}")
            elif name == "bandwidth":
                if not _is_int(value):
                    raise ValueError(f"bandwidth must be a whole number of bytes per second, not {value!r}")
            elif name == "after":
                value = _after(value)
            elif not (_is_int(value) or isinstance(value, float)):
                raise ValueError(f"{name} must be a number, not {value!r}")
            values[name] = value if name in ("blackhole", "bandwidth", "after") else float(value)
        start = base if base is not None else cls()
        merged = {field.name: values.get(field.name, getattr(start, field.name)) for field in fields(cls)}
        return cls(**merged)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _after(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_int(one) for one in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"after must be a byte count or a [low, high] pair of byte counts, not {value!r}")


@dataclass(frozen=True, slots=True)
class Fate:
    """What one connection will suffer: "pass" (nothing), or a kind of `KINDS` once `after` more
    bytes from the server have passed."""

    kind: str
    after: int


def draw_fate(faults: Faults, rng: random.Random) -> Fate:
    """One connection's fate under `faults`. Always two draws, so a connection's later draws do not
    depend on what the earlier ones chose."""
    roll = rng.random()
    after = rng.randint(*faults.after)
    edge = 0.0
    for kind in KINDS:
        edge += getattr(faults, kind)
        if roll < edge:
            return Fate(kind, after)
    return Fate("pass", 0)


def fate_rng(seed: int, number: int) -> random.Random:
    """The RNG the `number`th accepted connection draws its fates from."""
    return random.Random(f"netproxy:{seed}:fate:{number}")


def jitter_rng(seed: int, number: int, direction: str) -> random.Random:
    """The RNG the `number`th connection draws its jitter from in one direction ("up" or "down")."""
    return random.Random(f"netproxy:{seed}:jitter:{number}:{direction}")
