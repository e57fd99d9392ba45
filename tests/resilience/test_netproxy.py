"""The network fault proxy (`chaos.netproxy`) as a client sees each fault, against real servers the
tests start on 127.0.0.1: Python's `http.server` serving files whose bytes the test wrote, and an echo
server. Timing bounds are loose on purpose (a shared 2-core machine) and every measured time is
printed; the proxy's counters are what the tests wait on, never a sleep.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.netproxy import ControlClient, Counters, Faults, NetProxy
from tests.resilience.netservers import (
    EchoServer,
    FileServer,
    Seen,
    get,
    receive,
    receive_response,
    request,
    response_of,
)

WAIT = 10.0
SMALL = 100_000
LARGE = 4 * 1024 * 1024


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[FileServer, dict[str, bytes]]]:
    """A real HTTP server over a folder of files with seeded random bytes; the test keeps the bytes."""
    rng = random.Random(9)
    contents = {
        "small": rng.randbytes(SMALL),
        "large": rng.randbytes(LARGE),
        "part": rng.randbytes(LARGE // 16),
    }
    root = tmp_path / "served"
    root.mkdir()
    for name, data in contents.items():
        (root / name).write_bytes(data)
    server = FileServer(root)
    try:
        yield server, contents
    finally:
        server.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


def _round_trip(sock: socket.socket, size: int = 100) -> float:
    payload = os.urandom(size)
    started = time.monotonic()
    sock.sendall(payload)
    seen = receive(sock, WAIT, want=size)
    took = time.monotonic() - started
    assert seen.data == payload, f"echo gave {len(seen.data)} bytes ({seen.end})"
    return took


def _timings(label: str, values: list[float]) -> None:
    print(f"{label}: " + " ".join(f"{value * 1000:.1f}" for value in values) + " ms")


def test_latency_delays_every_round_trip_and_jitter_varies_it(echo: EchoServer) -> None:
    with NetProxy(echo.address, seed=1) as proxy, socket.create_connection(proxy.address, WAIT) as sock:
        direct = [_round_trip(sock) for _ in range(5)]
        proxy.update(latency=0.05)
        delayed = [_round_trip(sock) for _ in range(5)]
        proxy.update(latency=0.02, jitter=0.04)
        jittered = [_round_trip(sock) for _ in range(10)]
        proxy.clear()
        recovered = [_round_trip(sock) for _ in range(5)]
    _timings("no faults", direct)
    _timings("latency 50 ms each way", delayed)
    _timings("latency 20 ms + jitter up to 40 ms each way", jittered)
    _timings("cleared", recovered)
    assert max(direct) < 0.05
    assert all(0.1 <= took < 0.1 + 0.3 for took in delayed), "a round trip gains twice the latency"
    assert all(0.04 <= took < 0.12 + 0.3 for took in jittered)
    assert max(jittered) - min(jittered) > 0.01, "jitter varies the delay"
    assert max(recovered) < 0.05


def test_latency_delays_a_stream_without_throttling_it(files: tuple[FileServer, dict[str, bytes]]) -> None:
    server, contents = files
    with NetProxy(server.address, faults=Faults(latency=0.1)) as proxy:
        started = time.monotonic()
        seen = get(proxy.address, "large")
        took = time.monotonic() - started
    print(f"4 MiB through 100 ms each way: {took:.3f} s")
    assert response_of(seen, contents["large"]) == "full"
    # a request and its response each wait 100 ms; 64 chunks delayed one after the other would take 6 s
    assert 0.2 <= took < 1.5


def test_bandwidth_caps_the_link_shared_by_all_connections(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    cap = 256 * 1024
    seen: list[Seen] = []
    with NetProxy(server.address, faults=Faults(bandwidth=cap)) as proxy:

        def fetch() -> None:
            seen.append(get(proxy.address, "part"))

        readers = [threading.Thread(target=fetch) for _ in range(2)]
        started = time.monotonic()
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(WAIT)
        took = time.monotonic() - started
        proxy.clear()
        started = time.monotonic()
        after = get(proxy.address, "part")
        uncapped = time.monotonic() - started
        down = proxy.counters().bytes_down
    total = sum(len(one.data) for one in seen)
    rate = total / took
    print(f"two readers of 256 KiB at a 256 KiB/s cap: {took:.2f} s, {rate / 1024:.0f} KiB/s together")
    print(f"the same file once the cap is cleared: {uncapped:.3f} s")
    assert [response_of(one, contents["part"]) for one in seen] == ["full", "full"]
    assert 0.5 * cap <= rate <= 1.1 * cap  # the cap holds; the lower bound leaves room for a busy machine
    assert response_of(after, contents["part"]) == "full"
    assert uncapped < 0.5
    assert down == total + len(after.data)


def test_a_stalled_connection_is_accepted_and_never_answered(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    with NetProxy(server.address, faults=Faults(stall=1.0)) as proxy:
        with socket.create_connection(proxy.address, WAIT) as stalled:
            stalled.sendall(request("small"))
            started = time.monotonic()
            seen = receive(stalled, 0.5)
            waited = time.monotonic() - started
            counters = proxy.wait(lambda c: c.stalled == 1 and c.open == 1, WAIT)
            print(f"stalled: nothing for {waited:.2f} s; {counters}")
            assert seen == Seen(b"", "timeout")
            assert counters.bytes_down == 0
            assert server.requests == 0, "the server never saw the stalled connection"
            proxy.clear()
            assert response_of(get(proxy.address, "small"), contents["small"]) == "full"
            assert receive(stalled, 0.3) == Seen(b"", "timeout"), "a stalled connection stays stalled"
        assert proxy.wait(lambda c: c.open == 0, WAIT).accepted == 2


def test_a_stall_mid_response_passes_exactly_its_bytes_first(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    faults = Faults(stall=1.0, after=(30_000, 30_000))
    with (
        NetProxy(server.address, faults=faults) as proxy,
        socket.create_connection(proxy.address, WAIT) as sock,
    ):
        sock.sendall(request("small"))
        seen = receive(sock, 0.5)
    assert seen.end == "timeout"
    assert len(seen.data) == 30_000
    assert seen.length == SMALL and seen.body == contents["small"][: len(seen.body)]


def test_reset_gives_econnreset_on_new_and_open_connections(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    with NetProxy(server.address) as proxy, socket.create_connection(proxy.address, WAIT) as kept:
        kept.sendall(request("small", close=False))
        first = receive_response(kept, WAIT)
        assert (first.end, first.body) == ("complete", contents["small"])
        proxy.update(reset=1.0)
        proxy.wait(lambda c: c.reset == 1, WAIT)
        with pytest.raises(ConnectionResetError):
            kept.sendall(request("small"))
            kept.settimeout(WAIT)
            kept.recv(1)
        assert get(proxy.address, "small") == Seen(b"", "reset")
        counters = proxy.wait(lambda c: c.reset == 2, WAIT)
        assert server.requests == 1, "a connection reset at accept never reaches the server"
        proxy.clear()
        assert response_of(get(proxy.address, "small"), contents["small"]) == "full"
    print(counters)


def test_a_reset_mid_response_ends_a_short_body_with_econnreset(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    with NetProxy(server.address, faults=Faults(reset=1.0, after=(50_000, 50_000))) as proxy:
        seen = get(proxy.address, "large")
    print(f"reset after {len(seen.data)} bytes")
    assert seen.end == "reset"
    assert len(seen.data) <= 50_000
    assert contents["large"].startswith(seen.body)


def test_a_cut_ends_the_response_with_eof_after_exactly_its_bytes(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    with NetProxy(server.address, faults=Faults(cut=1.0, after=(70_000, 70_000))) as proxy:
        seen = get(proxy.address, "large")
        proxy.clear()
        again = get(proxy.address, "large")
        counters = proxy.counters()
    assert seen.end == "eof"
    assert len(seen.data) == 70_000
    assert seen.length == LARGE and len(seen.body) < LARGE, "a short body, as the client sees it"
    assert contents["large"].startswith(seen.body)
    assert response_of(again, contents["large"]) == "full"
    assert (counters.cut, counters.accepted) == (1, 2)


def test_a_black_hole_swallows_connects_and_holds_open_streams_until_cleared(
    files: tuple[FileServer, dict[str, bytes]],
) -> None:
    server, contents = files
    with NetProxy(server.address) as proxy, socket.create_connection(proxy.address, WAIT) as held:
        proxy.wait(lambda c: c.accepted == 1, WAIT)
        proxy.update(blackhole=True)
        started = time.monotonic()
        with socket.socket() as new, pytest.raises(TimeoutError):
            new.settimeout(0.5)
            new.connect(proxy.address)
        print(f"a connect during the black hole gave up after {time.monotonic() - started:.2f} s")
        held.sendall(request("small"))
        assert receive(held, 0.5) == Seen(b"", "timeout")
        counters = proxy.counters()
        assert (counters.bytes_up, counters.bytes_down, counters.accepted) == (0, 0, 1)
        assert server.requests == 0
        proxy.clear()
        assert response_of(receive(held, WAIT), contents["small"]) == "full", "held bytes flow on"
        assert response_of(get(proxy.address, "small"), contents["small"]) == "full"


def test_a_proxy_started_with_the_black_hole_open_lets_nothing_in(echo: EchoServer) -> None:
    with NetProxy(echo.address, faults=Faults(blackhole=True)) as proxy:
        with socket.socket() as new, pytest.raises(TimeoutError):
            new.settimeout(0.5)
            new.connect(proxy.address)
        proxy.update(blackhole=False)
        with socket.create_connection(proxy.address, WAIT) as sock:
            _round_trip(sock)
        assert proxy.counters().accepted == 1, "the proxy's own filler connection is not counted"


def test_a_server_that_is_gone_gives_a_reset_until_it_is_back(echo: EchoServer) -> None:
    with NetProxy(echo.address) as proxy:
        echo.close()
        with pytest.raises(ConnectionResetError), socket.create_connection(proxy.address, WAIT) as sock:
            sock.settimeout(WAIT)
            sock.recv(1)  # the RST may also beat the connect's return: a reset either way
        assert proxy.wait(lambda c: c.open == 0, WAIT).upstream_failed == 1
        back = EchoServer(port=echo.address[1])
        try:
            with socket.create_connection(proxy.address, WAIT) as sock:
                _round_trip(sock)
        finally:
            back.close()


def test_a_server_resetting_its_side_resets_the_client() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with server, NetProxy(("127.0.0.1", server.getsockname()[1])) as proxy:
        with socket.create_connection(proxy.address, WAIT) as sock:
            sock.sendall(b"hello")
            server.settimeout(WAIT)
            accepted, _ = server.accept()
            assert receive(accepted, WAIT, want=5).data == b"hello"
            accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            accepted.close()
            assert receive(sock, WAIT) == Seen(b"", "reset")
        counters = proxy.wait(lambda c: c.open == 0, WAIT)
    assert (counters.reset, counters.bytes_up) == (0, 5), "not a fault the proxy injected"


def _outcomes(address: tuple[str, int], seed: int) -> tuple[list[str], Counters]:
    faults = Faults(stall=0.15, reset=0.2, cut=0.25, after=(0, 60_000))
    with NetProxy(address, faults=faults, seed=seed) as proxy:
        seen = []
        for _ in range(16):
            one = get(proxy.address, "small", timeout=0.3)
            length = "" if one.end == "reset" else f" {len(one.data)}"  # a reset may drop bytes in flight
            seen.append(f"{one.end}{length}")
        return seen, proxy.wait(lambda c: c.open == 0, WAIT)


def test_the_same_seed_gives_the_same_faults(files: tuple[FileServer, dict[str, bytes]]) -> None:
    server, _ = files
    first, counters = _outcomes(server.address, seed=5)
    again, _ = _outcomes(server.address, seed=5)
    other, _ = _outcomes(server.address, seed=6)
    print("seed 5:", first)
    print("seed 6:", other)
    assert first == again
    assert first != other
    kinds = [one.split()[0] for one in first]
    assert {"eof", "reset", "timeout"} <= set(kinds)
    full = sum(one.startswith("eof") and int(one.split()[1]) > SMALL for one in first)
    cut = sum(one.startswith("eof") for one in first) - full
    observed = (kinds.count("timeout"), kinds.count("reset"), cut)
    assert (counters.stalled, counters.reset, counters.cut) == observed, "the counters agree with the client"


# -- from another process -----------------------------------------------------------------------------


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chaos.netproxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_cli_proxy_is_steered_through_its_control_socket(echo: EchoServer, tmp_path: Path) -> None:
    control = tmp_path / "proxy.sock"
    target = f"{echo.address[0]}:{echo.address[1]}"
    options = ["--control", str(control), "--seed", "3", "--faults", '{"latency": 0.05}']
    process = _start_cli("--listen", "127.0.0.1:0", "--to", target, *options)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:") and line.endswith("(seed 3)\n"), line
        port = int(line.split(":")[1].split()[0])
        client = ControlClient(control)
        assert client.faults() == Faults(latency=0.05)
        assert client.address() == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
            delayed = _round_trip(sock)
            client.update(latency=0.0)
            direct = _round_trip(sock)
            client.update(reset=1.0)
            assert client.wait(lambda c: c.reset == 1, WAIT).accepted == 1
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"x")
                sock.settimeout(WAIT)
                sock.recv(1)
        client.clear()
        assert client.faults() == Faults()
        with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
            _round_trip(sock)
        print(f"round trip at 50 ms each way {delayed * 1000:.1f} ms, then without {direct * 1000:.1f} ms")
        assert delayed >= 0.1 and direct < 0.05
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
        assert not control.exists(), "the control socket is removed at exit"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()  # reaps it and closes its pipes


def test_the_control_socket_answers_a_bad_request_with_an_error(echo: EchoServer, tmp_path: Path) -> None:
    control = tmp_path / "proxy.sock"
    with NetProxy(echo.address, control=control) as proxy:
        client = ControlClient(control)
        with pytest.raises(ValueError, match="latency"):
            client.update(latency=-1.0)
        with pytest.raises(ValueError, match="unknown"):
            client.update(bogus=1)
        assert client.faults() == Faults() == proxy.faults()
        proxy.update(cut=0.5)
        assert client.faults() == Faults(cut=0.5)


def test_a_control_socket_in_use_is_refused_and_a_stale_one_replaced(
    echo: EchoServer, tmp_path: Path
) -> None:
    control = tmp_path / "proxy.sock"
    with NetProxy(echo.address, control=control):
        with pytest.raises(OSError, match="already answers"):
            NetProxy(echo.address, control=control).start()
        assert ControlClient(control).counters().accepted == 0, "the first proxy still answers"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(control))  # a socket file nobody listens on, as a killed proxy leaves it
    stale.close()
    with NetProxy(echo.address, control=control):
        assert ControlClient(control).faults() == Faults()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "127.0.0.1:0", "--to", "10.1.2.3:80"], "127.0.0.1"),
        (["--listen", "0.0.0.0:0", "--to", "127.0.0.1:80"], "127.0.0.1"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1"], "HOST:PORT"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:80", "--faults", '{"latency": -1}'], "latency"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:80", "--faults", '{"bogus": 1}'], "bogus"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:80", "--faults", "{"], "JSON"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str) -> None:
    process = _start_cli(*args)
    out, err = process.communicate(timeout=WAIT)
    lines = err.strip().splitlines()
    assert process.returncode == 2, err
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert out == ""


def test_a_port_in_use_gives_one_line_and_exit_1(echo: EchoServer) -> None:
    taken = f"127.0.0.1:{echo.address[1]}"
    process = _start_cli("--listen", taken, "--to", taken)
    _, err = process.communicate(timeout=WAIT)
    assert process.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert errno.errorcode[errno.EADDRINUSE] in err or "in use" in err
