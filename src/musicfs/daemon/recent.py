"""The last warnings and errors the daemon logged, kept in memory for `musicfs status`.

Owns: `RecentProblems`, a logging handler holding the newest WARNING-and-above records (message,
level, logger, thread, wall-clock time), bounded in size.
Concurrency: logging calls it from any thread; a deque with a maximum length appends atomically.
"""

from __future__ import annotations

import logging
from collections import deque


class RecentProblems(logging.Handler):
    """Keeps the last `size` records at WARNING or above."""

    def __init__(self, size: int = 20) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, object]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "thread": record.threadName,
                "message": record.getMessage(),
            }
        )
