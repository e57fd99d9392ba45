"""Nothing dies silently: hooks that log every uncaught exception, wherever it happens.

Owns: `sys.excepthook`, `threading.excepthook`, `sys.unraisablehook` and `faulthandler`. Each hook logs
at ERROR the thread name, the place and the traceback. (Trio task failures surface through the nursery
that started the task and reach the main thread's handler in `musicfs.daemon.run`.)
Concurrency: installed once at start; the hooks themselves only call the thread-safe logging module.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
from types import TracebackType

log = logging.getLogger("musicfs.crash")


def install_crash_hooks() -> None:
    """Install the hooks; safe to call more than once."""
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr, all_threads=True)
    sys.excepthook = _main_thread_hook
    threading.excepthook = _thread_hook
    sys.unraisablehook = _unraisable_hook


def _main_thread_hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    log.error("uncaught exception in thread %s", threading.current_thread().name, exc_info=(kind, value, tb))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "unknown thread"
    assert args.exc_value is not None
    log.error(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )


def _unraisable_hook(args: sys.UnraisableHookArgs) -> None:
    where = args.err_msg or "exception ignored"
    log.error(
        "%s in %r (thread %s)",
        where,
        args.object,
        threading.current_thread().name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
