"""Named fault points: the single seam through which the chaos tooling injects failures.

Owns: `fault_point(name)`, called by production code at writer steps (for example "scan.apply",
"tree.publish"), and `install_hook`, which only the chaos tooling calls. With no hook installed a
fault point is one global read and a comparison with None: it costs nothing worth measuring, and a
normal `musicfs mount` never installs one.
Concurrency: the hook is set once, before the daemon starts its threads; fault points may be hit from
any thread, and the hook must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable

FaultHook = Callable[[str], None]
_hook: FaultHook | None = None


def fault_point(name: str) -> None:
    """Give an installed fault hook the chance to fail, stall or pause here; otherwise do nothing."""
    if _hook is not None:
        _hook(name)


def install_hook(hook: FaultHook | None) -> None:
    """Install (or with None, remove) the process-wide fault hook. For the chaos tooling only."""
    global _hook
    _hook = hook
