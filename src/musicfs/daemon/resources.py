"""Process resources that can run out: open file descriptors and resident memory (5.3, 5.5).

Owns: reading them from /proc/self, the descriptor soft limit and the memory limit of the daemon's
cgroup (systemd's MemoryHigh=/MemoryMax=), a warning when either nears its limit, and the line at
start naming the descriptor limit really in force (a unit's LimitNOFILE= can be clamped by the host).
Concurrency: cheap reads of /proc and /sys, safe from any thread.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WARN_FRACTION = 0.8
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Resources:
    open_fds: int
    fd_limit: int
    rss_bytes: int
    memory_limit: int | None  # the lowest of the cgroup's memory.high and memory.max, if any


def measure() -> Resources:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    rss = rss_pages * os.sysconf("SC_PAGE_SIZE")
    return Resources(len(os.listdir("/proc/self/fd")), soft, rss, _cgroup_memory_limit())


def log_limits() -> None:
    """Log the descriptor limit this process really has, whatever the unit or the shell asked for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    log.info("file descriptor limit in force: %d (hard limit %d)", soft, hard)


def _cgroup_memory_limit() -> int | None:
    """The cgroup v2 memory limit of this process, or None (no limit, or no cgroup v2)."""
    try:
        with open("/proc/self/cgroup") as cgroup:
            line = next((entry for entry in cgroup if entry.startswith("0::")), None)
    except OSError:
        return None
    if line is None:
        return None
    folder = CGROUP_ROOT / line.strip()[3:].lstrip("/")
    limits = []
    for name in ("memory.high", "memory.max"):
        try:
            text = (folder / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def warn_if_near_limits(now: Resources) -> bool:
    """Log a warning for descriptors or memory above 80% of their limit; True if any is."""
    near = False
    if now.fd_limit > 0 and now.open_fds >= WARN_FRACTION * now.fd_limit:
        log.warning(
            "%d of %d file descriptors open: raise LimitNOFILE or close files", now.open_fds, now.fd_limit
        )
        near = True
    if now.memory_limit and now.rss_bytes >= WARN_FRACTION * now.memory_limit:
        log.warning(
            "resident memory %d MiB of a %d MiB limit: raise MemoryHigh=/MemoryMax=",
            now.rss_bytes >> 20,
            now.memory_limit >> 20,
        )
        near = True
    return near
