"""`python -m chaos.netproxy`: the network fault proxy as a process of its own.

    python -m chaos.netproxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT
                             [--control SOCKET] [--seed N] [--faults JSON]

Prints "listening on 127.0.0.1:PORT (seed N)" once it accepts connections (so port 0 picks a free
port a parent can read), then proxies until SIGTERM or SIGINT, and exits 0. `--faults` gives the
settings to start with, as a JSON object of `chaos.netproxy.faults.Faults` fields; `--control` is a
unix socket through which another process changes them and reads the counters
(`chaos.netproxy.ControlClient`). Bad arguments give one line and exit 2; a port or socket that
cannot be had, one line and exit 1.
Concurrency: one trio loop on the main thread runs the proxy, the control server and the signal
receiver.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import trio

from chaos.netproxy.control import open_control, serve_control
from chaos.netproxy.engine import Address, Engine, loopback, open_listener
from chaos.netproxy.faults import Faults

PROG = "python -m chaos.netproxy"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def _address(text: str) -> Address:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    try:
        return loopback((host, int(port)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _faults(text: str) -> Faults:
    try:
        mapping = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--faults is not JSON: {exc}") from None
    if not isinstance(mapping, dict):
        raise argparse.ArgumentTypeError("--faults must be a JSON object")
    try:
        return Faults.from_mapping(mapping)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog=PROG, description="A TCP fault proxy on 127.0.0.1 (see chaos/netproxy).")
    parser.add_argument("--listen", type=_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--to", type=_address, required=True, metavar="HOST:PORT", help="the server")
    parser.add_argument("--control", type=Path, default=None, metavar="SOCKET", help="control socket")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--faults", type=_faults, default=Faults(), metavar="JSON", help="initial faults")
    args = parser.parse_args(argv)
    try:
        listener = open_listener(args.listen)
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}", file=sys.stderr)
        return 1
    try:
        control = open_control(args.control) if args.control is not None else None
    except OSError as exc:
        listener.close()
        print(f"{PROG}: error: cannot open the control socket {args.control}: {exc}", file=sys.stderr)
        return 1
    engine = Engine(listener, args.to, args.faults, args.seed)
    trio.run(_serve, engine, control, args.control)
    return 0


async def _serve(engine: Engine, control: socket.socket | None, control_path: Path | None) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.run)
            if control is not None and control_path is not None:
                nursery.start_soon(serve_control, engine, control, control_path)
            host, port = engine.address
            print(f"listening on {host}:{port} (seed {engine.seed})", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    sys.exit(main())
