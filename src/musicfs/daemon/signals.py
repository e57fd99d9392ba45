"""Signals in every phase of `musicfs mount` outside the event loop (7.5).

Owns: the handlers installed first thing by `musicfs mount` (before any path is touched) and kept
until the process ends: SIGTERM and SIGINT record a stop request (the first one's name in
`received`), SIGHUP is ignored (a rescan needs a serving mount) unless the terminal MusicFS was
started at has gone away (the window closed): then it is a stop request too. While the event loop runs, trio's
signal receiver (`musicfs.daemon.service`) takes the signals over and puts these handlers back when
it closes; a stop recorded before it opened is handed over (`received`), so no signal falls into a
gap. What each phase does with a stop request:
  - the origin wait and the other start-up steps look at `received` (`check`) and stop there;
  - the first scan stops at its next batch boundary: `on_stop` listeners (the library's `stopping`
    event) are run;
  - the final shutdown after the event loop just goes on (it is already stopping).
At exit the three signals are set to SIG_IGN, which survives the interpreter's finalization (it
resets Python handlers to the default action, which would kill a process that already stopped).

Concurrency: the handlers run on the main thread between two bytecodes, wherever it is, so they only
set a plain attribute and write one byte to a pipe: no lock, no logging there. A daemon thread
("musicfs-signals") reads the pipe and does the rest (logs, runs the listeners), so a listener that
takes a lock the interrupted main thread holds only makes that thread wait, never deadlocks it.
`phase` is a plain attribute the main thread sets and the signal thread reads.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANDLED = (*STOP_SIGNALS, signal.SIGHUP)
FINAL_SHUTDOWN = "the final shutdown"


class StopRequested(Exception):
    """A SIGTERM or SIGINT asked a start-up step to stop; the mount ends cleanly with exit 0."""


class StopSignals:
    """The stop and hang-up handling of one `musicfs mount` process, outside its event loop."""

    def __init__(self) -> None:
        self.received: str | None = None  # name of the first stop signal, set by the handler
        self.phase = "start-up"  # what the process is doing, for the log lines
        self._listeners: list[Callable[[], None]] = []
        self._terminal_fd = started_at_terminal()
        self._read_end, self._write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self._read_end, True)
        threading.Thread(target=self._follow, name="musicfs-signals", daemon=True).start()

    @classmethod
    def install(cls) -> StopSignals:
        """Create the handling and install it for SIGTERM, SIGINT and SIGHUP (main thread only)."""
        handling = cls()
        for signum in HANDLED:
            signal.signal(signum, handling._handle)
        atexit.register(_ignore_from_now_on)
        return handling

    def on_stop(self, listener: Callable[[], None]) -> None:
        """Call `listener` (in the signal thread) at the first stop signal outside the event loop."""
        self._listeners.append(listener)

    def check(self) -> None:
        """Raise StopRequested if a stop signal came."""
        if self.received is not None:
            raise StopRequested(self.received)

    def _handle(self, signum: int, _frame: object) -> None:
        stops = signum in STOP_SIGNALS or (signum == signal.SIGHUP and terminal_gone(self._terminal_fd))
        if stops and self.received is None:
            self.received = signal.Signals(signum).name
        with contextlib.suppress(OSError):  # a full pipe: the thread has enough to do already
            os.write(self._write_end, bytes([signum]))

    def _follow(self) -> None:
        stopped = False
        while True:
            try:
                signum = os.read(self._read_end, 1)[0]
            except (OSError, IndexError):
                return
            name = signal.Signals(signum).name
            phase = self.phase
            if signum == signal.SIGHUP and not terminal_gone(self._terminal_fd):
                log.info("SIGHUP ignored during %s (a rescan needs a serving mount)", phase)
            elif phase == FINAL_SHUTDOWN:
                log.info("%s during %s: already stopping", name, phase)
            elif stopped:
                log.info("%s again during %s: already stopping", name, phase)
            else:
                stopped = True
                log.info("%s during %s: stopping in order", name, phase)
                for listener in self._listeners:
                    listener()


def started_at_terminal() -> int | None:
    """The first of stdin, stdout and stderr that is a terminal, or None (under systemd)."""
    return next((fd for fd in (0, 1, 2) if os.isatty(fd)), None)


def terminal_gone(fd: int | None) -> bool:
    """Whether the terminal MusicFS was started at has been hung up since (the window closed): then
    SIGHUP means "stop", as for every program at a terminal; without a terminal it asks for a rescan."""
    return fd is not None and not os.isatty(fd)


def _ignore_from_now_on() -> None:
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)
