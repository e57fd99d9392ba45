"""The one record of how every origin is doing: ok, degraded (answers, but reads timed out) or offline.

Owns: `OriginStates`, the single source of truth for origin health. Three parties write it: the
start-up (an origin missing or not answering at start, 7.4), the scans (an origin found unavailable,
or back), and the health checks (`musicfs.daemon.health`: offline and degraded). The gateways read it
to fail reads of an offline origin at once; status and metrics read it to report. There is no other
copy of this state anywhere.
Concurrency: written from the main thread (start-up), the scan worker thread and the trio thread
(health); read from the trio thread. Every write replaces one dict entry (atomic in CPython) and a
reader copies before iterating, so readers never see a torn state; a reader may see a state one
write old, which is harmless (the next request sees the new one).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class OriginStates:
    """Why each origin is offline or degraded; an origin in neither map is ok."""

    _offline: dict[int, str] = field(default_factory=dict)
    _degraded: dict[int, str] = field(default_factory=dict)

    def offline_reason(self, origin_id: int) -> str | None:
        """Why the origin is offline, or None when it is not."""
        return self._offline.get(origin_id)

    def degraded_reason(self, origin_id: int) -> str | None:
        """Why the origin is degraded (it answers, but reads timed out), or None."""
        return self._degraded.get(origin_id)

    def set_offline(self, origin_id: int, why: str) -> None:
        self._offline[origin_id] = why
        self._degraded.pop(origin_id, None)

    def set_online(self, origin_id: int) -> None:
        self._offline.pop(origin_id, None)

    def set_degraded(self, origin_id: int, why: str | None) -> None:
        """Mark the origin degraded (why) or not (None)."""
        if why is None:
            self._degraded.pop(origin_id, None)
        else:
            self._degraded[origin_id] = why

    def offline(self) -> dict[int, str]:
        """A copy: origin id -> why, for every offline origin."""
        return dict(self._offline)

    def degraded(self) -> dict[int, str]:
        """A copy: origin id -> why, for every degraded origin."""
        return dict(self._degraded)

    def state(self, origin_id: int) -> tuple[str, str | None]:
        """("ok" | "degraded" | "offline", why)."""
        offline = self._offline.get(origin_id)
        if offline is not None:
            return "offline", offline
        degraded = self._degraded.get(origin_id)
        if degraded is not None:
            return "degraded", degraded
        return "ok", None
