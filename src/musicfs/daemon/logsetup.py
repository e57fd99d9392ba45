"""Logging to stderr: short lines on a terminal, full ones in files, priority prefixes for journald.

Owns: the root logger's handler and format. On a terminal a line is the time, the level and the
message (so it fits a screen 80 columns wide; with DEBUG also where it came from); in a pipe or file
it carries the date, the logger and the thread too. Under systemd (`$JOURNAL_STREAM` set) lines
carry `<N>` syslog priority prefixes and no timestamp (journald adds its own).
Concurrency: called at start, before any other thread exists.
"""

from __future__ import annotations

import logging
import os
import sys

from musicfs.daemon.terminal import is_terminal

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
    elif is_terminal(sys.stderr) and level != "DEBUG":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pyfuse3").setLevel(max(logging.INFO, logging.getLevelName(level)))
