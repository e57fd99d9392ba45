"""Logging to stderr: readable lines on a terminal, journald priority prefixes under systemd.

Owns: the root logger's handler and format. Under systemd (`$JOURNAL_STREAM` set) lines carry
`<N>` syslog priority prefixes and no timestamp (journald adds its own).
Concurrency: called once at start, before any other thread exists.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup_logging(level: str) -> None:
    """Send every log record at `level` or above to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s [%(threadName)s]: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pyfuse3").setLevel(max(logging.INFO, logging.getLevelName(level)))
