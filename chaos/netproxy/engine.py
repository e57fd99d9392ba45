"""The network fault proxy's event loop: accepting, forwarding, delaying, pacing and breaking connections.

Owns: `Engine`, the listening socket and every connection the proxy holds (both sockets of each, its
fate, its delay lines), the bandwidth pacing shared by all connections, the black-hole gate, and the
`Faults` in force; `open_listener`, the listening socket on 127.0.0.1 (bound by the caller, so a port
in use is the caller's plain OSError).

Each connection is two directions; each direction is a reader task that stamps every chunk it reads
with the time it is due (now + latency + jitter, never before the chunk ahead of it) and a writer task
that waits for that time, for its slice of the link's bandwidth and for the black hole to close, then
delivers it. A bounded channel between the two (16 chunks of up to 256 KiB) holds what is in
flight, so a held or slow direction pushes back on its sender through TCP instead of filling memory;
like a TCP window, it also bounds one stream through a latency L to 4 MiB / L (400 MiB/s at 10 ms).
Bytes from the server to the client count towards a connection's fate; when the fate acts, the
connection's cancel scope ends both directions at once and the connection is finished according to
its kind:
  - reset: the client socket is closed with SO_LINGER 0 (an RST: ECONNRESET at the client);
  - cut: FIN to the client after the bytes that passed (a short response), the server side closed;
  - stall: the server side closed and the client side left open and silent; what the client sends
    is read and dropped, so the proxy notices when it hangs up and frees the connection.
A server that refuses the proxy's connect, or resets its side, gives the client an RST as well.

The black hole makes connects hang for real: the listening socket's backlog is cut to 0 and filled by
one connection of the proxy's own (never accepted while the hole lasts), so the kernel drops every
further SYN and a client's connect times out; when the hole is cleared the backlog is restored, the
filler dropped, and clients whose SYN is retransmitted after that get through (Linux, with the
default net.ipv4.tcp_abort_on_overflow=0; with 1 they would see a refused connect instead).

Why trio rather than threads: one thread owns every connection's state, so nothing here needs a lock;
timers (latency, jitter, pacing) are cheap `sleep_until`s rather than a thread each; cancelling one
scope ends a connection or the whole proxy with every socket closed, where a thread blocked in recv
would have to be woken by closing its socket under it; and MusicFS already depends on trio.
Concurrency: everything here runs on the one trio thread; `apply` and `update` must be called on it
(`NetProxy` hands them over with the loop's token; the control server runs in the same loop). Other
threads read only `counters` (a `CounterBoard`, locked) and `faults` (an immutable object replaced by
one assignment).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from chaos.netproxy.counters import CounterBoard
from chaos.netproxy.faults import Fate, Faults, draw_fate, fate_rng, jitter_rng

Address = tuple[str, int]
BACKLOG = 128
CHUNK = 256 * 1024
QUEUED_CHUNKS = 16
PACE_SLICES_PER_SECOND = 20  # a capped direction sends bandwidth/20 bytes at a time
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST

Chunk = tuple[float, bytes]  # (due time on trio's clock, data); b"" is the end of the stream


def loopback(address: Address) -> Address:
    """`address` if its host is an IPv4 loopback address; ValueError otherwise (the proxy is for
    tests on one machine and never listens on, or connects to, anything else)."""
    host, port = address
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IPv4 address: the proxy works on 127.0.0.1 only") from None
    if not ip.is_loopback:
        raise ValueError(f"{host} is not a loopback address: the proxy works on 127.0.0.1 only")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return (host, port)


def open_listener(address: Address) -> socket.socket:
    """A listening TCP socket on a loopback `address` (port 0: any free port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(loopback(address))
        listener.listen(BACKLOG)
    except BaseException:
        listener.close()
        raise
    return listener


class _Link:
    """One direction's bandwidth, shared by every connection: each slice reserves its time on it."""

    def __init__(self) -> None:
        self._free_at = 0.0

    async def pace(self, size: int, rate: int) -> None:
        start = max(trio.current_time(), self._free_at)
        self._free_at = start + size / rate
        await trio.sleep_until(start)


@dataclass(eq=False)
class _Connection:
    number: int
    client: trio.SocketStream
    rng: random.Random
    fate: Fate
    remaining: int  # bytes from the server still to pass before the fate acts
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    server_socket: trio.socket.SocketType | None = None
    server: trio.SocketStream | None = None
    ending: str = "closed"  # or a fate kind, "refused", "client-lost", "server-lost"

    @property
    def ended(self) -> bool:
        return self.ending != "closed"

    def end(self, ending: str) -> None:
        if not self.ended:
            self.ending = ending
            self.scope.cancel()


class Engine:
    """The proxy; `run` serves until cancelled. See the module docstring."""

    def __init__(self, listener: socket.socket, target: Address, faults: Faults, seed: int) -> None:
        self.target = loopback(target)
        self.address: Address = listener.getsockname()
        self.seed = seed
        self.faults = faults
        self.counters = CounterBoard()
        self._listener = trio.socket.from_stdlib_socket(listener)
        self._open: dict[int, _Connection] = {}
        self._accepted = 0
        self._changed = trio.Event()
        self._accepting: trio.CancelScope | None = None
        self._fillers: list[socket.socket] = []
        self._filler_peers: set[Address] = set()
        self._links = {"up": _Link(), "down": _Link()}
        if faults.blackhole:  # before anyone can connect: the listener's backlog takes connects at once
            self._set_blackhole(True)

    async def run(self) -> None:
        """Accept and serve connections until cancelled; then every connection is closed."""
        try:
            with self._listener:
                async with trio.open_nursery() as nursery:
                    await self._accept(nursery)
        finally:
            for filler in self._fillers:
                filler.close()

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Change the named settings, keep the others; ValueError (nothing changed) if invalid."""
        faults = Faults.from_mapping(changes, base=self.faults)
        self.apply(faults)
        return faults

    def apply(self, faults: Faults) -> None:
        """Put `faults` in force for every connection, open ones included (module `faults`)."""
        old, self.faults = self.faults, faults
        if faults.blackhole != old.blackhole:
            self._set_blackhole(faults.blackhole)
        if faults.fates_differ(old):
            for number in sorted(self._open):
                connection = self._open[number]
                if not connection.ended:
                    self._doom(connection)
        self._changed.set()
        self._changed = trio.Event()

    # -- accepting ------------------------------------------------------------------------------------

    async def _accept(self, nursery: trio.Nursery) -> None:
        while True:
            while self.faults.blackhole:
                await self._changed.wait()
            accepted = None
            with trio.CancelScope() as self._accepting:
                accepted = await self._listener.accept()
            self._accepting = None
            if accepted is None:
                continue  # the black hole opened while waiting
            sock, peer = accepted
            if peer in self._filler_peers:
                self._filler_peers.discard(peer)
                sock.close()
                continue
            number = self._accepted
            self._accepted += 1
            rng = fate_rng(self.seed, number)
            connection = _Connection(number, trio.SocketStream(sock), rng, Fate("pass", 0), 0)
            self._open[number] = connection
            self.counters.add(accepted=1, open=1)
            self._doom(connection)
            nursery.start_soon(self._serve, connection)

    def _set_blackhole(self, on: bool) -> None:
        if on:
            self._listener.listen(0)
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(self.address)
            self._fillers.append(filler)
            if self._accepting is not None:
                self._accepting.cancel()
            return
        for filler in self._fillers:
            with contextlib.suppress(OSError):
                filler.getpeername()  # connected: it sits in the accept queue and is dropped there
                self._filler_peers.add(filler.getsockname())
            filler.close()  # before the backlog grows, so an unconnected one can never get in
        self._fillers.clear()
        self._listener.listen(BACKLOG)

    def _doom(self, connection: _Connection) -> None:
        """Draw `connection`'s fate under the faults in force; act at once if it is due at once."""
        connection.fate = draw_fate(self.faults, connection.rng)
        connection.remaining = connection.fate.after
        if connection.fate.kind != "pass" and connection.remaining == 0:
            self._act(connection)

    def _act(self, connection: _Connection) -> None:
        if connection.ended:
            return
        kind = connection.fate.kind
        self.counters.add(**{"stalled" if kind == "stall" else kind: 1})
        connection.end(kind)

    # -- one connection -------------------------------------------------------------------------------

    async def _serve(self, connection: _Connection) -> None:
        try:
            if not connection.ended:  # a fate due at accept never contacts the server
                with connection.scope:
                    await self._forward(connection)
            await self._finish(connection)
        finally:
            del self._open[connection.number]
            connection.client.socket.close()
            if connection.server_socket is not None:
                connection.server_socket.close()
            self.counters.add(open=-1)

    async def _forward(self, connection: _Connection) -> None:
        server = connection.server_socket = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            await server.connect(self.target)
        except OSError:
            self.counters.add(upstream_failed=1)
            connection.end("refused")
            return
        connection.server = trio.SocketStream(server)
        up_in, up_out = trio.open_memory_channel[Chunk](QUEUED_CHUNKS)
        down_in, down_out = trio.open_memory_channel[Chunk](QUEUED_CHUNKS)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, connection, connection.client, up_in, "up")
            nursery.start_soon(self._write, connection, up_out, connection.server, "up")
            nursery.start_soon(self._read, connection, connection.server, down_in, "down")
            nursery.start_soon(self._write, connection, down_out, connection.client, "down")

    async def _read(
        self,
        connection: _Connection,
        source: trio.SocketStream,
        chunks: trio.MemorySendChannel[Chunk],
        direction: str,
    ) -> None:
        rng = jitter_rng(self.seed, connection.number, direction)
        due = 0.0
        async with chunks:
            while True:
                try:
                    data = await source.receive_some(CHUNK)
                except trio.BrokenResourceError:
                    connection.end("client-lost" if direction == "up" else "server-lost")
                    return
                faults = self.faults
                delay = faults.latency + (rng.uniform(0.0, faults.jitter) if faults.jitter else 0.0)
                due = max(due, trio.current_time() + delay)
                await chunks.send((due, data))
                if not data:
                    return

    async def _write(
        self,
        connection: _Connection,
        chunks: trio.MemoryReceiveChannel[Chunk],
        sink: trio.SocketStream,
        direction: str,
    ) -> None:
        link = self._links[direction]
        lost = "server-lost" if direction == "up" else "client-lost"
        async with chunks:
            async for due, data in chunks:
                await trio.sleep_until(due)
                try:
                    if not data:
                        await self._hold()
                        await sink.send_eof()
                        return
                    view = memoryview(data)
                    while view:
                        size = len(view)
                        rate = self.faults.bandwidth
                        if rate:
                            size = min(size, max(1, rate // PACE_SLICES_PER_SECOND))
                            await link.pace(size, rate)
                        await self._hold()
                        if direction == "down" and connection.fate.kind != "pass":
                            size = min(size, connection.remaining)
                        await sink.send_all(view[:size])
                        view = view[size:]
                        self._delivered(connection, direction, size)
                except trio.BrokenResourceError:
                    connection.end(lost)
                    return

    async def _hold(self) -> None:
        """Wait while the black hole is open."""
        while self.faults.blackhole:
            await self._changed.wait()

    def _delivered(self, connection: _Connection, direction: str, size: int) -> None:
        if direction == "up":
            self.counters.add(bytes_up=size)
            return
        self.counters.add(bytes_down=size)
        if connection.fate.kind != "pass":
            connection.remaining -= size
            if connection.remaining == 0:
                self._act(connection)

    async def _finish(self, connection: _Connection) -> None:
        """End a connection according to how it ended (module docstring)."""
        ending = connection.ending
        if connection.server_socket is not None:
            connection.server_socket.close()
        if ending in ("reset", "refused", "server-lost"):
            connection.client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        elif ending == "cut":
            with contextlib.suppress(OSError):
                connection.client.socket.shutdown(socket.SHUT_WR)
            await self._drain(connection.client)
        elif ending == "stall":
            await self._drain(connection.client)

    @staticmethod
    async def _drain(client: trio.SocketStream) -> None:
        """Read and drop what the client sends until it hangs up."""
        with contextlib.suppress(trio.BrokenResourceError):
            while await client.receive_some(CHUNK):
                pass
