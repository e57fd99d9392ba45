"""A test fails on a WARNING or ERROR it did not expect, in-process and in the real daemon's log.

Owns: the `allow_log(*patterns)` marker (regular expressions matched against the message of each
WARNING-or-worse record a test expects; `re.search`), the in-process check (every record of a
`musicfs` or `chaos` logger at WARNING or above, gathered by a handler on the root logger), and
`unexpected_daemon_lines`, which the process tier's `spawn` fixture applies to each daemon's log
when the test is done. Tracebacks in a daemon log are never allowed unless a pattern names them.
The model is s3ql's pytest_checklogs. What every test may see: the demo library holds a corrupt MP3
on purpose, whose tags cannot be read (`ALWAYS_ALLOWED`).
Concurrency: the handler may be called from any thread (logging serialises handlers per record;
the list append is atomic).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ALWAYS_ALLOWED = (r"cannot read tags of .*corrupt\.mp3 \(",)
DAEMON_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) +(\S+) \[[^\]]*\]: (.*)$")


def allowed_patterns(item: pytest.Item) -> list[re.Pattern[str]]:
    patterns = list(ALWAYS_ALLOWED)
    for marker in item.iter_markers("allow_log"):
        patterns.extend(marker.args)
    return [re.compile(p) for p in patterns]


def _allowed(message: str, patterns: Iterable[re.Pattern[str]]) -> bool:
    return any(p.search(message) for p in patterns)


def unexpected_daemon_lines(log_text: str, patterns: list[re.Pattern[str]]) -> list[str]:
    """The WARNING-or-worse lines (and tracebacks) of a daemon log that no pattern allows."""
    found = []
    for line in log_text.splitlines():
        match = DAEMON_LINE.match(line)
        if (match is not None and not _allowed(match.group(3), patterns)) or (
            line.startswith("Traceback") and not _allowed(line, patterns)
        ):
            found.append(line)
    return found


class _Gather(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("musicfs", "chaos"):
            self.records.append(record)


@pytest.fixture(autouse=True)
def _no_unexpected_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    gather = _Gather()
    root = logging.getLogger()
    root.addHandler(gather)
    try:
        yield
    finally:
        root.removeHandler(gather)
    patterns = allowed_patterns(request.node)
    unexpected = [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in gather.records
        if not _allowed(r.getMessage(), patterns)
    ]
    if unexpected:
        pytest.fail(
            "unexpected warnings or errors were logged (allow them with @pytest.mark.allow_log):\n"
            + "\n".join(unexpected),
            pytrace=False,
        )


def check_daemon_logs(item: pytest.Item, logs: Iterable[Path]) -> None:
    """Fail the test if a daemon log holds a line `allow_log` does not allow."""
    patterns = allowed_patterns(item)
    problems = []
    for path in logs:
        text = path.read_text(errors="replace") if path.exists() else ""
        problems += [f"{path.name}: {line}" for line in unexpected_daemon_lines(text, patterns)]
    if problems:
        pytest.fail(
            "the daemon logged unexpected warnings or errors (allow them with @pytest.mark.allow_log):\n"
            + "\n".join(problems),
            pytrace=False,
        )
