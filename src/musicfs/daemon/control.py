"""The control channel: a private Unix socket through which `musicfs status|rescan|shutdown|metrics`
talk to a running daemon.

Owns: the socket `STATE_DIR/control.sock` (mode 0600, in a 0700 state directory; each connection's
peer credentials are checked: only the daemon's own user and root are answered), its protocol (one
JSON request line, one JSON answer line), and the client side used by the CLI. There is no network
listener.
Concurrency: the server runs as trio tasks on the event-loop thread and calls `Commands` there; the
client is a short blocking call from the CLI process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from musicfs.core.errors import ExitCode, UserError

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
XATTR_CONTROL = "user.musicfs.control"
MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT = 10.0

Command = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]


class ControlError(UserError):
    """The daemon could not be reached or refused the request."""

    exit_code = ExitCode.USER


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


async def serve(
    path: Path, commands: Mapping[str, Command], task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on `path` and answer requests until cancelled; the socket file is removed on exit."""
    path.unlink(missing_ok=True)  # we hold the instance lock: a socket file left here is stale
    listener_socket = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await listener_socket.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener_socket.listen(16)
    listener = trio.SocketListener(listener_socket)
    allowed = {0, os.getuid()}
    task_status.started()
    try:
        async with listener, trio.open_nursery() as connections:
            while True:
                stream = await listener.accept()
                connections.start_soon(_answer, stream, commands, allowed)
    finally:
        path.unlink(missing_ok=True)


async def _answer(stream: trio.SocketStream, commands: Mapping[str, Command], allowed: set[int]) -> None:
    async with stream:
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                if _peer_uid(stream.socket) not in allowed:  # type: ignore[arg-type]
                    await _send(stream, {"ok": False, "error": "permission denied"})
                    return
                request = json.loads(await _read_line(stream))
                command = commands.get(str(request.get("command")))
                if command is None:
                    answer: Mapping[str, Any] = {
                        "ok": False,
                        "error": f"unknown command {request.get('command')!r}",
                    }
                else:
                    answer = {"ok": True, **await command(request)}
                await _send(stream, answer)
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, ValueError) as exc:
            log.debug("control request dropped: %s", exc)
        except Exception:
            log.exception("control command failed")
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await _send(stream, {"ok": False, "error": "internal error (see the daemon's log)"})


async def _read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    return data.split(b"\n", 1)[0]


async def _send(stream: trio.SocketStream, answer: Mapping[str, Any]) -> None:
    await stream.send_all(json.dumps(answer).encode() + b"\n")


def request(path: Path, command: str, timeout: float = REQUEST_TIMEOUT, **arguments: Any) -> dict[str, Any]:
    """Send one command and return the daemon's answer; ControlError if it cannot be reached."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
            client.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise ControlError(f"no MusicFS is running with control socket {path}") from None
        except OSError as exc:
            raise ControlError(f"cannot talk to MusicFS at {path}: {exc.strerror or exc}") from None
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise ControlError(f"MusicFS at {path} gave no answer") from None
    if not answer.get("ok"):
        raise ControlError(f"MusicFS refused '{command}': {answer.get('error')}")
    return answer
