"""Origin health (3.8, 4.2.1-4.2.4): periodic checks, in parallel, each with its own deadline.

Owns: the transitions of every origin between ok, degraded and offline, which it writes into the
shared `OriginStates`. Degraded: the origin
answers its checks, but reads timed out since the last check. An origin that cannot be listed
within the deadline, or whose folder is suddenly empty while the index knows files in it (an
unmounted NAS looks exactly like that), goes offline: its gateway fails reads at once with EIO, the
tree stays as it was (a vanished origin is not a deleted library), and one ERROR line says so. When
it answers again it goes back to ok, reads work again, and a rescan is requested.
A deadline the event loop only noticed long after it passed (more than `LATE_WAKE`, or the deadline
itself if shorter) is no verdict: the process could not run meanwhile (Ctrl-Z and `fg`, SIGSTOP and
SIGCONT, a frozen cgroup, a paused VM), so the probe's thread stood still too; the state stays as it
was until the next check.
Concurrency: a supervised trio task; each check runs in a worker thread under `trio.move_on_after`,
and no new probe starts while the last one of that origin is still stuck, so a hung origin holds at
most one probe thread. `_probing` is touched by the probe threads (set add/discard are atomic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

from musicfs.origins.gateway import OriginGateway
from musicfs.origins.states import OriginStates

log = logging.getLogger(__name__)

RescanRequest = Callable[[str], object]
LATE_WAKE = 1.0  # seconds past a deadline after which the loop was not running: no verdict


class OriginHealth:
    """Checks every origin now and then and records in `states` whether it is ok, degraded or offline."""

    def __init__(
        self,
        gateways: Mapping[int, OriginGateway],
        states: OriginStates,
        known_files: Callable[[int], int],
        request_rescan: RescanRequest,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.gateways = gateways
        self.states = states
        self.known_files = known_files
        self.request_rescan = request_rescan
        self.interval = interval
        self.timeout = timeout
        self._probing: set[int] = set()  # origins whose last probe thread has not come back yet
        self._timeouts_seen: dict[int, int] = {}

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
            deadline = trio.current_time() + self.timeout
            with trio.move_on_at(deadline) as waited:
                problem = await trio.to_thread.run_sync(
                    self._probe, origin_id, gateway, abandon_on_cancel=True
                )
            if waited.cancelled_caught and trio.current_time() - deadline > min(LATE_WAKE, self.timeout):
                log.debug("an origin check ran while MusicFS was stopped (Ctrl-Z?); it does not count")
                return
        self._note_slowness(origin_id, gateway, problem)
        was = self.states.offline_reason(origin_id)
        if problem is None:
            self.states.set_online(origin_id)
        else:
            self.states.set_offline(origin_id, problem)
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
            if self.states.degraded_reason(origin_id) is None:
                log.warning(
                    "origin %s is degraded: %d reads timed out",
                    gateway.origin.root.decode(errors="replace"),
                    new_timeouts,
                )
            self.states.set_degraded(origin_id, f"{new_timeouts} reads timed out since the last check")
        else:
            self.states.set_degraded(origin_id, None)

    def _probe(self, origin_id: int, gateway: OriginGateway) -> str | None:
        self._probing.add(origin_id)
        try:
            return gateway.origin.unavailable_reason(knows_files=self.known_files(origin_id) > 0)
        finally:
            self._probing.discard(origin_id)
