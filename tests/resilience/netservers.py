"""Real TCP servers on 127.0.0.1 for the network fault proxy's tests, and a raw HTTP client that shows
exactly what came through.

`FileServer` is Python's own threaded `http.server` serving a folder (HTTP/1.1, keep-alive), counting
the requests it answered, so a test knows independently of the proxy whether a request ever reached
the server. `EchoServer` sends every chunk it receives straight back (round trips for latency).
`get` speaks HTTP over a plain socket and returns what the client really saw: the bytes, whether the
stream ended with EOF, a reset or a timeout; the tests compare them with the bytes they wrote.
Concurrency: each server runs its accept loop in a daemon thread and a thread per connection; the
request counter is guarded by a lock. `close` stops the accept loop and closes the listening socket.
"""

from __future__ import annotations

import errno
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Address = tuple[str, int]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client (the proxy) that drops the connection mid-response is what these tests do; any
        other error is reported as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FileServer:
    """`http.server` serving `root` on 127.0.0.1 at an ephemeral port."""

    def __init__(self, root: Path) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        owner = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                with owner._lock:
                    owner._requests += 1
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.address: Address = ("127.0.0.1", self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="file-server", daemon=True
        )
        self._thread.start()

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(65536):
            sock.sendall(data)


class _EchoTCP(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # a test may start a server again on the port of one it stopped
    daemon_threads = True


class EchoServer:
    """Sends every chunk it receives straight back, on 127.0.0.1 at `port` (0: an ephemeral one)."""

    def __init__(self, port: int = 0) -> None:
        self._server = _EchoTCP(("127.0.0.1", port), _Echo)
        self.address: Address = ("127.0.0.1", self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="echo-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass(frozen=True, slots=True)
class Seen:
    """What a client saw of one response: the raw bytes, and how the stream ended: "eof", "reset"
    (ECONNRESET) or "timeout" (nothing more within the read timeout)."""

    data: bytes
    end: str

    @property
    def header(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]

    @property
    def length(self) -> int:
        """The Content-Length the server announced (-1 if no complete header came through)."""
        for line in self.header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and b"\r\n\r\n" in self.data:
                return int(value)
        return -1


def request(path: str, *, close: bool = True) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return b"GET /" + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: " + connection + b"\r\n\r\n"


def receive(sock: socket.socket, timeout: float, want: int | None = None) -> Seen:
    """Read until EOF, a reset, `timeout` seconds without a byte, or (with `want`) that many bytes."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    got = 0
    end = "eof"
    try:
        while want is None or got < want:
            chunk = sock.recv(65536 if want is None else min(65536, want - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        else:
            end = "complete"
    except TimeoutError:
        end = "timeout"
    except ConnectionResetError:
        end = "reset"
    return Seen(b"".join(chunks), end)


def receive_response(sock: socket.socket, timeout: float) -> Seen:
    """Read one response of a kept-alive connection: its header, then the Content-Length it names."""
    seen = receive(sock, timeout, want=1)
    while seen.end == "complete" and b"\r\n\r\n" not in seen.data:
        more = receive(sock, timeout, want=1)
        seen = Seen(seen.data + more.data, more.end)
    if seen.length < 0:
        return seen
    rest = receive(sock, timeout, want=seen.length - len(seen.body))
    return Seen(seen.data + rest.data, rest.end)


def get(address: Address, path: str, timeout: float = 5.0) -> Seen:
    """One GET on a new connection (Connection: close), as the client saw it. A reset while
    connecting (an RST right after the accept can beat the connect's own return) or while sending
    the request counts as a reset too."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request(path))
            return receive(sock, timeout)
    except OSError as exc:
        if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
            raise
        return Seen(b"", "reset")


def response_of(seen: Seen, expected_body: bytes) -> str:
    """The word "full" when `seen` is a complete 200 response with exactly `expected_body`, else why not."""
    if not seen.data.startswith(b"HTTP/1.0 200") and not seen.data.startswith(b"HTTP/1.1 200"):
        return f"no 200 status line: {seen.data[:40]!r} ({seen.end})"
    if seen.length != len(expected_body) or seen.body != expected_body:
        return f"body of {len(seen.body)} bytes ({seen.end}), {len(expected_body)} expected"
    return "full"
