"""2.2: an exception that nobody catches, in any thread or as an unraisable, is logged at ERROR with
the thread name and the traceback."""

from __future__ import annotations

import gc
import logging
import sys
import threading

import pytest

from musicfs.daemon.crash import install_crash_hooks


@pytest.fixture
def hooks() -> object:
    saved = sys.excepthook, threading.excepthook, sys.unraisablehook
    install_crash_hooks()
    yield
    sys.excepthook, threading.excepthook, sys.unraisablehook = saved


@pytest.mark.allow_log(r"uncaught exception in thread musicfs-test-worker")
@pytest.mark.failure_mode("2.2")
@pytest.mark.usefixtures("hooks")
def test_thread_exception_is_logged_with_thread_name(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise ValueError("worker died")

    worker = threading.Thread(target=boom, name="musicfs-test-worker")
    with caplog.at_level(logging.ERROR):
        worker.start()
        worker.join()
    (record,) = caplog.records
    assert "musicfs-test-worker" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError


@pytest.mark.allow_log(r"exception ignored in .*Broken.__del__")
@pytest.mark.failure_mode("2.2")
@pytest.mark.usefixtures("hooks")
def test_unraisable_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def __del__(self) -> None:
            raise OSError("failed in __del__")

    with caplog.at_level(logging.ERROR):
        Broken()
        gc.collect()
    (record,) = [r for r in caplog.records if r.exc_info and r.exc_info[0] is OSError]
    assert "MainThread" in record.getMessage()


@pytest.mark.allow_log(r"uncaught exception in thread MainThread")
@pytest.mark.failure_mode("2.2")
@pytest.mark.usefixtures("hooks")
def test_main_thread_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise KeyError("main")
    except KeyError:
        kind, value, tb = sys.exc_info()
    with caplog.at_level(logging.ERROR):
        assert kind is not None and value is not None
        sys.excepthook(kind, value, tb)
    (record,) = caplog.records
    assert "MainThread" in record.getMessage() and record.exc_info is not None
