"""Logging: readable lines on a terminal, journald priority prefixes and no timestamps under systemd."""

from __future__ import annotations

import io
import logging

import pytest

from musicfs.daemon import logsetup


def _emit(monkeypatch: pytest.MonkeyPatch, journal: bool) -> str:
    stream = io.StringIO()
    monkeypatch.setattr(logsetup.sys, "stderr", stream)
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        logsetup.setup_logging("INFO")
        logging.getLogger("musicfs.test").warning("origin %s is offline", "/nas")
        logging.getLogger("musicfs.test").debug("not shown")
    finally:
        logging.getLogger().handlers[:], level = saved
        logging.getLogger().setLevel(level)
    return stream.getvalue()


def test_journald_gets_priority_prefixes_and_no_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _emit(monkeypatch, journal=True) == "<4>musicfs.test [MainThread]: origin /nas is offline\n"


def test_terminal_gets_timestamp_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _emit(monkeypatch, journal=False)
    assert line.endswith(" WARNING musicfs.test [MainThread]: origin /nas is offline\n")
    assert line[:4].isdigit()
