"""A fake systemd notification socket: records what a daemon says through `$NOTIFY_SOCKET`.

Owns: `FakeNotifySocket`, a SOCK_DGRAM unix socket bound to a file path or to an abstract name
("@name", as systemd spells it in NOTIFY_SOCKET), and a background thread that records every datagram
as a `Notification` (monotonic arrival time, text). Tests give the daemon `env()` and then wait for
messages with `wait_for`, instead of sleeping.
Concurrency: one receiver thread appends under a condition variable; `messages`, `wait_for` and
`close` may be called from any thread. `close` (or leaving the with-block) stops the thread, closes
the socket and removes its file.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

MAX_DATAGRAM = 65536
_POLL_SECONDS = 0.05
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the terminating NUL


@dataclass(frozen=True, slots=True)
class Notification:
    """One datagram: when it arrived (time.monotonic()) and its text (lines joined by newlines)."""

    at: float
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


Predicate = Callable[[Notification], bool]


class FakeNotifySocket:
    """A NOTIFY_SOCKET stand-in. `FakeNotifySocket(path)` or `FakeNotifySocket("@name")`;
    `FakeNotifySocket.abstract()` picks a unique abstract name."""

    def __init__(self, address: str | Path) -> None:
        self.address = str(address)
        if self.address.startswith("@"):
            bind_to = "\0" + self.address[1:]
            self._path: Path | None = None
        else:
            self._path = Path(self.address)
            bind_to = self.address
        if len(os.fsencode(bind_to)) > _SUN_PATH_MAX:
            raise ValueError(f"notify socket address too long for a unix socket: {self.address!r}")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(bind_to)
        self._socket.settimeout(_POLL_SECONDS)
        self._messages: list[Notification] = []
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="fake-notify-socket", daemon=True)
        self._thread.start()

    @classmethod
    def abstract(cls) -> FakeNotifySocket:
        return cls(f"@musicfs-chaos-notify-{os.getpid()}-{uuid.uuid4().hex[:12]}")

    def env(self) -> dict[str, str]:
        """The environment a daemon needs to talk to this socket."""
        return {"NOTIFY_SOCKET": self.address}

    def messages(self) -> list[Notification]:
        with self._changed:
            return list(self._messages)

    def texts(self) -> list[str]:
        """Every datagram's text, in arrival order."""
        return [message.text for message in self.messages()]

    def wait_for(
        self, wanted: str | Predicate, timeout: float, *, since: int = 0
    ) -> tuple[int, Notification]:
        """Wait for the first datagram (from index `since` on) containing `wanted` (a substring) or
        satisfying it (a predicate). Returns its index and the datagram; TimeoutError otherwise."""
        predicate: Predicate = (lambda m: wanted in m.text) if isinstance(wanted, str) else wanted
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(since, len(self._messages)):
                    if predicate(self._messages[index]):
                        return index, self._messages[index]
                since = max(since, len(self._messages))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [m.text for m in self._messages]
                    raise TimeoutError(f"no notification matching {wanted!r} within {timeout:g} s: {seen}")
                self._changed.wait(remaining)

    def close(self) -> None:
        """Stop the receiver, close the socket, remove its file; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=5)
        self._socket.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> FakeNotifySocket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            message = Notification(time.monotonic(), data.decode("utf-8", "replace"))
            with self._changed:
                self._messages.append(message)
                self._changed.notify_all()
