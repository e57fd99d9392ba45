"""Origin health (3.8, 4.2.1-4.2.4): periodic checks, in parallel, each with its own deadline.

Owns: the state of every origin (ok, degraded, offline) and its transitions. Degraded: the origin
answers its checks, but reads timed out since the last check. An origin that cannot be listed
within the deadline, or whose folder is suddenly empty while the index knows files in it (an
unmounted NAS looks exactly like that), goes offline: its gateway fails reads at once with EIO, the
tree stays as it was (a vanished origin is not a deleted library), and one ERROR line says so. When
it answers again it goes back to ok, reads work again, and a rescan is requested.
Concurrency: a supervised trio task; each check runs in a worker thread under `trio.move_on_after`,
and no new probe starts while the last one of that origin is still stuck, so a hung origin holds at
most one probe thread. `_probing` is touched by the probe threads (set add/discard are atomic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

from musicfs.origins.gateway import OriginGateway

log = logging.getLogger(__name__)

RescanRequest = Callable[[str], object]


class OriginHealth:
    """Checks every origin now and then and switches its gateway between ok and offline."""

    def __init__(
        self,
        gateways: Mapping[int, OriginGateway],
        known_files: Callable[[int], int],
        request_rescan: RescanRequest,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.gateways = gateways
        self.known_files = known_files
        self.request_rescan = request_rescan
        self.interval = interval
        self.timeout = timeout
        self._probing: set[int] = set()  # origins whose last probe thread has not come back yet
        self._timeouts_seen: dict[int, int] = {}
        self.degraded: dict[int, str] = {}  # origin id -> why, for origins that answer but slowly

    def states(self) -> dict[int, str | None]:
        """Origin id -> None when ok, else why it is offline."""
        return {origin_id: gateway.offline for origin_id, gateway in self.gateways.items()}

    async def run(self) -> None:
        while True:
            await self.check_all()
            await trio.sleep(self.interval)

    async def check_all(self) -> None:
        async with trio.open_nursery() as nursery:
            for origin_id, gateway in self.gateways.items():
                nursery.start_soon(self._check, origin_id, gateway)

    async def _check(self, origin_id: int, gateway: OriginGateway) -> None:
        problem: str | None = f"no answer within {self.timeout:g} s"
        if origin_id not in self._probing:  # never pile up threads on a hung origin
            with trio.move_on_after(self.timeout):
                problem = await trio.to_thread.run_sync(
                    self._probe, origin_id, gateway, abandon_on_cancel=True
                )
        self._note_slowness(origin_id, gateway, problem)
        was = gateway.offline
        gateway.offline = problem
        if problem is not None and was is None:
            log.error(
                "origin %s is offline (%s): serving the known tree; reads of its files give EIO "
                "until it is back",
                gateway.origin.root.decode(errors="replace"),
                problem,
            )
        elif problem is None and was is not None:
            log.warning("origin %s is back; rescanning", gateway.origin.root.decode(errors="replace"))
            self.request_rescan("origin back")

    def _note_slowness(self, origin_id: int, gateway: OriginGateway, problem: str | None) -> None:
        """Degraded: it answers its checks, but reads timed out since the last one."""
        new_timeouts = gateway.timeouts - self._timeouts_seen.get(origin_id, 0)
        self._timeouts_seen[origin_id] = gateway.timeouts
        if problem is None and new_timeouts > 0:
            if origin_id not in self.degraded:
                log.warning(
                    "origin %s is degraded: %d reads timed out",
                    gateway.origin.root.decode(errors="replace"),
                    new_timeouts,
                )
            self.degraded[origin_id] = f"{new_timeouts} reads timed out since the last check"
        else:
            self.degraded.pop(origin_id, None)

    def _probe(self, origin_id: int, gateway: OriginGateway) -> str | None:
        self._probing.add(origin_id)
        try:
            return gateway.origin.unavailable_reason(knows_files=self.known_files(origin_id) > 0)
        finally:
            self._probing.discard(origin_id)
