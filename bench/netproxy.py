"""The network fault proxy's own cost: what `chaos.netproxy` takes from a stream, and how exactly it adds
latency, so the remote-origin benchmarks that run through it know it is not what they measure.

Usage: ``python -m bench.netproxy [--quick] [--rounds N]`` (no root needed).

The proxy runs as its own process (`python -m chaos.netproxy`, as a benchmark of MusicFS and rclone
would run it), steered through its control socket. The servers are in this process: one that sends a
fixed number of bytes to every connection, and an echo server.
1. Throughput without faults: one stream of 512 MiB (128 with `--quick`) and four at once, read
   directly and through the proxy (median of `--rounds`).
2. Latency of 10 ms each way (the 20 ms round trip of issue 9's benchmark): round trips of 100 bytes
   (median and 95th percentile, against the 20 ms wanted), and one stream's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench._common import (
    MIB,
    median_of,
    parse_args,
    print_footer,
    print_header,
    print_table,
    run_main,
    verdict,
)
from chaos.netproxy import ControlClient

Address = tuple[str, int]
LATENCY = 0.010
SEND_BUFFER = b"\0" * MIB


def _serve(handle: Callable[[socket.socket], None]) -> Address:
    """A server on 127.0.0.1 that runs `handle` for each connection in a thread, until the process ends."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            client, _ = server.accept()
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    host, port = server.getsockname()
    return (host, port)


def _sender(size: int) -> Callable[[socket.socket], None]:
    def send(client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            for _ in range(size // MIB):
                client.sendall(SEND_BUFFER)

    return send


def _echo(client: socket.socket) -> None:
    with client, contextlib.suppress(OSError):
        while data := client.recv(65536):
            client.sendall(data)


def _read_all(address: Address) -> int:
    count = 0
    with socket.create_connection(address) as sock:
        while data := sock.recv(MIB):
            count += len(data)
    return count


def _throughput(address: Address, streams: int) -> float:
    """MiB/s of `streams` connections read to their end at once."""
    totals = [0] * streams

    def read(number: int) -> None:
        totals[number] = _read_all(address)

    threads = [threading.Thread(target=read, args=(number,)) for number in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals) / (time.perf_counter() - started) / MIB


def _round_trips(address: Address, count: int) -> list[float]:
    payload = os.urandom(100)
    times = []
    with socket.create_connection(address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += sock.recv(len(payload) - len(got))
            times.append(time.perf_counter() - started)
    return times


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


@contextlib.contextmanager
def _proxy(target: Address, control: Path) -> Iterator[tuple[Address, ControlClient]]:
    """`python -m chaos.netproxy` to `target`; stopped (by its PID) whatever happens."""
    to = f"{target[0]}:{target[1]}"
    command = [sys.executable, "-m", "chaos.netproxy", "--listen", "127.0.0.1:0", "--to", to]
    process = subprocess.Popen([*command, "--control", str(control)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise SystemExit(f"the proxy did not start: {line!r}")
        client = ControlClient(control)
        yield client.address(), client
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median; default 3)")

    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", add)
    print_header("bench.netproxy", args)
    size = (128 if args.quick else 512) * MIB
    source = _serve(_sender(size))
    echo = _serve(_echo)
    table: list[list[object]] = []
    with (
        _proxy(source, args.workdir / "netproxy-source.sock") as (proxied, _),
        _proxy(echo, args.workdir / "netproxy-echo.sock") as (echoed, echo_control),
    ):
        for streams in (1, 4):
            direct = median_of([_throughput(source, streams) for _ in range(args.rounds)])
            through = median_of([_throughput(proxied, streams) for _ in range(args.rounds)])
            ratio = through / direct
            table.append([f"{streams} stream(s), no faults", direct, through, ratio, verdict(ratio, 0.25)])
        print_table(
            f"throughput, MiB/s ({size // MIB} MiB per stream)",
            ["case", "direct", "proxy", "ratio", "target 0.25x"],
            table,
        )
        direct_trips = _round_trips(echo, 200)
        echo_control.update(latency=LATENCY)
        trips = _round_trips(echoed, 200)
        wanted = 2 * LATENCY
        rows = []
        figures: list[tuple[str, Callable[[list[float]], float]]] = [
            ("median", statistics.median),
            ("95th percentile", _p95),
        ]
        for figure, pick in figures:
            value = pick(trips)
            late = verdict(value, wanted * 1.1, higher_is_better=False)
            rows.append([figure, pick(direct_trips) * 1000, value * 1000, wanted * 1000, late])
        print_table(
            f"round trips of 100 bytes, ms (latency {LATENCY * 1000:g} ms each way)",
            ["figure", "direct", "proxy", "wanted", "verdict (within 10%)"],
            rows,
        )
    with _proxy(source, args.workdir / "netproxy-source.sock") as (proxied, control):
        control.update(latency=LATENCY)
        delayed = median_of([_throughput(proxied, 1) for _ in range(args.rounds)])
    print(f"one stream at {LATENCY * 1000:g} ms each way: {delayed:,.0f} MiB/s (no target: for scale)")
    print_footer()


if __name__ == "__main__":
    run_main(main)
