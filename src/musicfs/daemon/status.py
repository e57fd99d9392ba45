"""What `musicfs status` shows of a running mount, and the one word that sums it up.

Owns: `mount_state` (starting, ready, degraded, offline, stopping) and `status` (the whole answer
of the control socket's `status` command), both pure functions of a `StatusInputs` the service
takes of itself. Origin health comes from the one `OriginStates`; nothing here keeps state.
Concurrency: called on the trio thread; no I/O but `resources.measure` (reads /proc of itself).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicfs.core import faults
from musicfs.daemon import resources
from musicfs.daemon.supervisor import TaskStatus
from musicfs.fs.stats import STATS
from musicfs.origins.states import OriginStates
from musicfs.tree.snapshot import Tree


@dataclass(frozen=True, slots=True)
class StatusInputs:
    pid: int
    mountpoint: Path
    lifecycle: str  # starting, ready or stopping (`musicfs.daemon.lifecycle`)
    origins: Sequence[tuple[int, bytes]]  # (origin id, root)
    states: OriginStates
    tree: Tree
    tasks: Sequence[TaskStatus]
    failed_tasks: bool
    cache_mode: str | None  # None without a cache; "ok" or why it is in pass-through
    rescans: tuple[int, int]  # completed, failed
    reads_in_flight: int


def mount_state(inputs: StatusInputs) -> str:
    """starting, ready, degraded (an origin offline or slow, a task failed, the cache down), offline
    (every origin offline), stopping."""
    if inputs.lifecycle != "ready":
        return inputs.lifecycle
    states = [inputs.states.state(origin_id)[0] for origin_id, _ in inputs.origins]
    if states and all(state == "offline" for state in states):
        return "offline"
    cache_down = inputs.cache_mode not in (None, "ok")
    degraded = any(state != "ok" for state in states) or inputs.failed_tasks or cache_down
    return "degraded" if degraded else "ready"


def status(
    inputs: StatusInputs, cache_usage: dict[str, Any] | None, recent: Iterable[dict[str, object]]
) -> dict[str, Any]:
    """Everything `musicfs status` shows."""
    usage = resources.measure()
    origins = []
    for origin_id, root in inputs.origins:
        state, why = inputs.states.state(origin_id)
        origins.append({"path": os.fsdecode(root), "state": state, "why": why})
    completed, failed = inputs.rescans
    return {
        "pid": inputs.pid,
        "mountpoint": str(inputs.mountpoint),
        "state": mount_state(inputs),
        "tracks": inputs.tree.track_count,
        "origins": origins,
        "tasks": [t.as_dict() for t in inputs.tasks],
        "rescans": {"completed": completed, "failed": failed},
        "requests": sum(STATS.requests.values()),
        "request_errors": dict(STATS.failures),
        "reads_in_flight": inputs.reads_in_flight,
        "open_fds": usage.open_fds,
        "rss_bytes": usage.rss_bytes,
        "fault_point_hits": dict(faults.hits),
        "cache": cache_usage,
        "recent_problems": list(recent),
    }
