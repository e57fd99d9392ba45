"""The network fault proxy's control channel: a unix socket speaking one JSON object per line.

Owns: `open_control` (the listening unix socket, bound by the caller), `serve_control` (its server,
run in the proxy's trio loop) and `ControlClient`, which another process uses to steer a proxy.
Requests and their answers ({"ok": true, ...} or {"ok": false, "error": "..."}):
    {"op": "faults"}                      -> "faults": the settings in force
    {"op": "set", "faults": {...}}        -> replaces them (fields left out are off)
    {"op": "update", "changes": {...}}    -> changes the named fields only
    {"op": "counters"}                    -> "counters": a snapshot of `Counters`
    {"op": "address"}                     -> "address": [host, port] the proxy listens on
A connection may carry any number of requests; `ControlClient` opens one per request.
Concurrency: `serve_control` handles each client in its own task of the proxy's loop, so the engine
is only ever touched on its thread; `ControlClient` is blocking and keeps no state between calls.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from chaos.netproxy.counters import Counters
from chaos.netproxy.engine import Address, Engine
from chaos.netproxy.faults import Faults

MAX_LINE = 1024 * 1024
CLIENT_TIMEOUT = 10.0
POLL_SECONDS = 0.01


def open_control(path: Path) -> socket.socket:
    """A listening unix socket at `path`. A socket file there that nobody answers on (left by a
    killed proxy) is replaced; one a live proxy answers on is OSError(EADDRINUSE), and so is
    anything else at `path`."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(os.fspath(path)) == 0:
                    raise OSError(errno.EADDRINUSE, f"a network proxy already answers on {path}")
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_control(engine: Engine, listener: socket.socket, path: Path) -> None:
    """Answer control requests until cancelled; then the socket file is removed."""
    try:
        with trio.socket.from_stdlib_socket(listener) as sock:
            async with trio.open_nursery() as nursery:
                while True:
                    client, _ = await sock.accept()
                    nursery.start_soon(_serve_client, engine, trio.SocketStream(client))
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _serve_client(engine: Engine, stream: trio.SocketStream) -> None:
    buffer = b""
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):
            while True:
                while b"\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data or len(buffer) > MAX_LINE:
                        return
                    buffer += data
                line, _, buffer = buffer.partition(b"\n")
                answer = _answer(engine, line)
                await stream.send_all(json.dumps(answer).encode() + b"\n")


def _answer(engine: Engine, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        op = request.get("op")
        if op == "faults":
            return {"ok": True, "faults": engine.faults.to_mapping()}
        if op == "set":
            engine.apply(Faults.from_mapping(_object(request, "faults")))
            return {"ok": True}
        if op == "update":
            engine.update(_object(request, "changes"))
            return {"ok": True}
        if op == "counters":
            return {"ok": True, "counters": engine.counters.snapshot().to_mapping()}
        if op == "address":
            return {"ok": True, "address": list(engine.address)}
        raise ValueError(f"unknown op {op!r} (faults, set, update, counters, address)")
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return {"ok": False, "error": str(exc)}


def _object(request: dict[str, Any], name: str) -> dict[str, Any]:
    value = request.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"{name!r} must be a JSON object of fault settings")
    return value


class ControlClient:
    """Steers a proxy through its control socket. Errors the proxy reports are ValueError; a proxy
    that does not answer within 10 s is TimeoutError, one that is gone OSError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def faults(self) -> Faults:
        return Faults.from_mapping(self._ask({"op": "faults"})["faults"])

    def set(self, faults: Faults) -> None:
        self._ask({"op": "set", "faults": faults.to_mapping()})

    def update(self, **changes: Any) -> None:
        self._ask({"op": "update", "changes": changes})

    def clear(self) -> None:
        self.set(Faults())

    def counters(self) -> Counters:
        return Counters.from_mapping(self._ask({"op": "counters"})["counters"])

    def address(self) -> Address:
        host, port = self._ask({"op": "address"})["address"]
        return (str(host), int(port))

    def wait(self, predicate: Callable[[Counters], bool], timeout: float) -> Counters:
        """The first counters (asked every 10 ms) for which `predicate` holds; TimeoutError if none
        within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            counters = self.counters()
            if predicate(counters):
                return counters
            if time.monotonic() >= deadline:
                raise TimeoutError(f"network proxy counters not reached within {timeout:g} s: {counters}")
            time.sleep(POLL_SECONDS)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CLIENT_TIMEOUT)
            sock.connect(os.fspath(self.path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                data = sock.recv(65536)
                if not data:
                    raise OSError(f"the network proxy at {self.path} hung up without an answer")
                reply += data
        answer: dict[str, Any] = json.loads(reply)
        if not answer.get("ok"):
            raise ValueError(answer.get("error", "the network proxy refused the request"))
        return answer
