"""Where one daemon is in its life: starting, ready (serving), stopping. The one record of "stopping".

Owns: `Lifecycle`. `stopping` is a `threading.Event`, so that a scan in a worker thread (which the
library is given it to watch), the signal handlers of the start-up phases and the trio side all see
the same flag; `state` is derived from it and from whether the mount announced READY. Nothing else
keeps a copy of either.
Concurrency: `request_stop` may be called from any thread or a signal handler (Event.set is safe
there); `mark_ready` only from the trio thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(slots=True)
class Lifecycle:
    stopping: threading.Event = field(default_factory=threading.Event)
    _ready: bool = False

    @property
    def state(self) -> str:
        """starting, ready or stopping."""
        if self.stopping.is_set():
            return "stopping"
        return "ready" if self._ready else "starting"

    def mark_ready(self) -> None:
        self._ready = True

    def request_stop(self) -> None:
        """Ask everything to stop: scans end at their next batch boundary, the service shuts down."""
        self.stopping.set()

    @property
    def is_stopping(self) -> bool:
        return self.stopping.is_set()
