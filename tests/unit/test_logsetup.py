"""Logging: short lines on a terminal, full ones in a pipe or file, journald priority prefixes and no
timestamps under systemd."""

from __future__ import annotations

import io
import logging
import re

import pytest

from musicfs.daemon import logsetup


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(monkeypatch: pytest.MonkeyPatch, journal: bool, tty: bool = False, level: str = "INFO") -> str:
    stream = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(logsetup.sys, "stderr", stream)
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        logsetup.setup_logging(level)
        logging.getLogger("musicfs.test").warning("origin %s is offline", "/nas")
        logging.getLogger("musicfs.test").debug("not shown")
    finally:
        logging.getLogger().handlers[:], level = saved
        logging.getLogger().setLevel(level)
    return stream.getvalue()


def test_journald_gets_priority_prefixes_and_no_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _emit(monkeypatch, journal=True) == "<4>musicfs.test [MainThread]: origin /nas is offline\n"


def test_a_pipe_gets_date_level_logger_and_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _emit(monkeypatch, journal=False)
    assert line.endswith(" WARNING musicfs.test [MainThread]: origin /nas is offline\n")
    assert line[:4].isdigit()


def test_a_terminal_gets_time_level_and_message_only(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _emit(monkeypatch, journal=False, tty=True)
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING origin /nas is offline\n", line), line


def test_a_terminal_at_debug_level_gets_where_each_line_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _emit(monkeypatch, journal=False, tty=True, level="DEBUG")
    assert "musicfs.test [MainThread]: origin /nas is offline" in line
