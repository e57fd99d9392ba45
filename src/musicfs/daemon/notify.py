"""systemd notifications (READY=1, STATUS=, STOPPING=1, EXTEND_TIMEOUT_USEC=) that never fail.

Owns: talking to `$NOTIFY_SOCKET` through sdnotify. Without the variable every call is a no-op; a
socket error is logged once at DEBUG and never raised, since a lost status line must not stop a mount.
Concurrency: `Notifier.send` may be called from any thread; one datagram per call, no shared state
beyond the sdnotify socket, which is safe for concurrent sendto.
"""

from __future__ import annotations

import logging
import os

import sdnotify

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages when systemd (or a test) asked for them through NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier(debug=False) if self.enabled else None

    def send(self, *lines: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.notify("\n".join(lines))
        except Exception as exc:  # sdnotify swallows most errors itself; be sure of it
            log.debug("sd_notify failed: %s", exc)

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")
