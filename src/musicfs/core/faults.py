"""The named fault points through which the chaos tooling injects failures at exact moments.

Owns: `fault_point(name)`, called by production code at writer steps (for example "scan.apply",
"tree.publish") and in every FUSE handler ("fs.read", ...), and the one hook that makes them act.
Only the chaos launcher (`chaos.launch`) installs a hook; a normal `musicfs mount` never does. With
no hook a fault point is one global read and a comparison with None: too small to measure beside a
FUSE request. Faulty origins are not a global seam: they are a parameter of the composition root
(`musicfs.daemon.app.assemble`, `wrap_origin`).
Concurrency: the hook is set once, before the daemon starts its threads; fault points may be hit
from any thread, so a hook must be thread-safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

FaultHook = Callable[[str], None]

_hook: FaultHook | None = None


hits: Counter[str] = Counter()
"""How often each fault point was passed while a hook was installed (shown by `musicfs status`)."""


def fault_point(name: str) -> None:
    """Give an installed fault hook the chance to fail, stall or pause here; otherwise do nothing."""
    if _hook is not None:
        hits[name] += 1
        _hook(name)


def install_hook(hook: FaultHook | None) -> None:
    """Install (or with None, remove) the process-wide fault hook. For the chaos tooling only."""
    global _hook
    _hook = hook
