"""Signal sequences for a `DaemonProcess`: storms at an interval, and signals timed by the daemon's log.

Owns: what `DaemonProcess.signal` alone does not: sending a signal several times and recording which
ones reached a live process (a signal sent after the daemon exited is recorded, not an error), and
sending a signal the moment the daemon logs a line (for example a second SIGTERM once "shutting down"
is logged, so it lands inside the shutdown instead of before it).
Concurrency: called from one test or scenario thread; the waits poll the daemon's log and process.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from chaos.daemon import DaemonProcess


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signal sent: which, when (time.monotonic()), and whether the daemon was still running."""

    signum: int
    at: float
    delivered: bool

    def describe(self) -> str:
        name = signal.Signals(self.signum).name
        return name if self.delivered else f"{name} (daemon already gone)"


def send(daemon: DaemonProcess, signum: int) -> Delivery:
    """Send `signum` if the daemon still runs; never raises because it has exited."""
    assert daemon.process is not None, "daemon not started"
    now = time.monotonic()
    if daemon.process.poll() is not None:
        return Delivery(signum, now, False)
    try:
        daemon.signal(signum)
    except ProcessLookupError:
        return Delivery(signum, now, False)
    return Delivery(signum, now, True)


def storm(daemon: DaemonProcess, signum: int, times: int, interval: float) -> list[Delivery]:
    """Send `signum` `times` times, `interval` seconds apart (pacing, not synchronisation)."""
    deliveries = []
    for number in range(times):
        if number:
            time.sleep(interval)
        deliveries.append(send(daemon, signum))
    return deliveries


def send_when_logged(daemon: DaemonProcess, signum: int, text: str, timeout: float = 30.0) -> Delivery:
    """Wait until the daemon logs `text`, then send `signum` at once.

    If the daemon exits before logging it, DaemonError; if it logs it and exits before the signal
    goes out, the delivery is recorded as not delivered.
    """
    daemon.wait_log(text, timeout)
    return send(daemon, signum)
