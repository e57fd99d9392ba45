"""The network fault proxy run in-process: `NetProxy`, the engine's trio loop in a thread of its own.

Owns: the proxy thread and its trio loop, the listening socket (bound in `start`, so a port in use
fails there, in the caller's thread), and, with `control=`, a control socket other processes can
steer the same proxy through (`chaos.netproxy.control`).
Concurrency: the engine lives on the proxy thread. `set` and `update` hand the change to that loop
(`TrioToken.run_sync_soon`) and return once it is in force for every connection, open ones included;
they may be called from any thread but the proxy's own (a trio loop of the caller's is fine: the call
only waits for an event). `faults`, `counters` and `wait` read thread-safe state directly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

from chaos.netproxy.control import open_control, serve_control
from chaos.netproxy.counters import Counters
from chaos.netproxy.engine import Address, Engine, loopback, open_listener
from chaos.netproxy.faults import Faults

CALL_TIMEOUT = 10.0
_T = TypeVar("_T")


class NetProxy:
    """A TCP proxy from `listen` (default: a free port on 127.0.0.1) to `target`, with `faults`.

    Use it as a context manager, or `start` and `stop`. `address` is where clients connect.
    """

    def __init__(
        self,
        target: Address,
        *,
        faults: Faults | None = None,
        seed: int = 0,
        listen: Address = ("127.0.0.1", 0),
        control: Path | None = None,
    ) -> None:
        self._target = loopback(target)
        self._initial = faults if faults is not None else Faults()
        self._seed = seed
        self._listen = listen
        self._control = control
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def address(self) -> Address:
        return self._running().address

    def start(self) -> NetProxy:
        listener = open_listener(self._listen)
        try:
            control = open_control(self._control) if self._control is not None else None
        except BaseException:
            listener.close()
            raise
        self._engine = Engine(listener, self._target, self._initial, self._seed)
        self._thread = threading.Thread(target=self._run, args=(control,), name="netproxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("the network proxy failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; re-raises a failure of the proxy loop."""
        if self._thread is None:
            return
        if self._token is not None and self._scope is not None:
            scope = self._scope
            with contextlib.suppress(trio.RunFinishedError):  # the loop already ended (a failure)
                self._token.run_sync_soon(scope.cancel)
        self._thread.join(CALL_TIMEOUT)
        if self._thread.is_alive():
            raise TimeoutError("the network proxy did not stop within 10 s")
        self._thread = None
        if self._failure is not None:
            raise RuntimeError("the network proxy failed") from self._failure

    def faults(self) -> Faults:
        return self._running().faults

    def set(self, faults: Faults) -> None:
        engine = self._running()
        self._call(lambda: engine.apply(faults))

    def update(self, **changes: Any) -> None:
        """Change the named settings only; ValueError (nothing changed) if one is invalid."""
        engine = self._running()
        self._call(lambda: engine.update(changes))

    def clear(self) -> None:
        self.set(Faults())

    def counters(self) -> Counters:
        return self._running().counters.snapshot()

    def wait(self, predicate: Callable[[Counters], bool], timeout: float) -> Counters:
        """The first counters for which `predicate` holds; TimeoutError if none within `timeout` s."""
        return self._running().counters.wait(predicate, timeout)

    def _running(self) -> Engine:
        if self._failure is not None:
            raise RuntimeError("the network proxy failed") from self._failure
        if self._engine is None or self._thread is None:
            raise RuntimeError("the network proxy is not running")
        return self._engine

    def _call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the proxy's loop and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("NetProxy methods are for other threads; on the proxy's loop use the Engine")
        assert self._token is not None
        done = threading.Event()
        outcome: list[tuple[bool, Any]] = []

        def run() -> None:
            try:
                outcome.append((True, function()))
            except Exception as exc:
                outcome.append((False, exc))
            finally:
                done.set()

        self._token.run_sync_soon(run)
        if not done.wait(CALL_TIMEOUT):
            raise TimeoutError("the network proxy's loop did not answer within 10 s")
        ok, value = outcome[0]
        if not ok:
            raise value
        result: _T = value
        return result

    def _run(self, control: socket.socket | None) -> None:
        try:
            trio.run(self._main, control)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self, control: socket.socket | None) -> None:
        assert self._engine is not None
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            nursery.start_soon(self._engine.run)
            if control is not None:
                assert self._control is not None
                nursery.start_soon(serve_control, self._engine, control, self._control)
            self._ready.set()
