"""Process resources that can run out: open file descriptors and resident memory (5.3, 5.5).

Owns: reading them from /proc/self and the soft limit, and a warning when descriptors near the limit.
Concurrency: cheap reads of /proc, safe from any thread; the warning state is only touched by the
caller's task.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

WARN_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class Resources:
    open_fds: int
    fd_limit: int
    rss_bytes: int


def measure() -> Resources:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return Resources(len(os.listdir("/proc/self/fd")), soft, rss_pages * os.sysconf("SC_PAGE_SIZE"))


def warn_if_near_limits(now: Resources) -> bool:
    """Log a warning when open descriptors pass 80% of the soft limit; True if they do."""
    if now.fd_limit > 0 and now.open_fds >= WARN_FRACTION * now.fd_limit:
        log.warning(
            "%d of %d file descriptors open: raise LimitNOFILE or close files", now.open_fds, now.fd_limit
        )
        return True
    return False
