"""The seams through which the chaos tooling injects failures: named fault points and origin wrappers.

Owns: `fault_point(name)`, called by production code at writer steps (for example "scan.apply",
"tree.publish") and in every FUSE handler ("fs.read", ...), and `wrap_origin`, through which the
composition root passes every origin it builds. Only the chaos tooling installs a hook or a wrapper
(`install_hook`, `install_origin_wrapper`); a normal `musicfs mount` never does. With nothing
installed a fault point is one global read and a comparison with None, and `wrap_origin` returns its
argument: the cost is too small to measure beside a FUSE request.
Concurrency: hook and wrapper are set once, before the daemon starts its threads; fault points may be
hit from any thread, so a hook must be thread-safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

FaultHook = Callable[[str], None]
OriginWrapper = Callable[[Any], Any]
T = TypeVar("T")

_hook: FaultHook | None = None
_origin_wrapper: OriginWrapper | None = None


hits: Counter[str] = Counter()
"""How often each fault point was passed while a hook was installed (shown by `musicfs status`)."""


def fault_point(name: str) -> None:
    """Give an installed fault hook the chance to fail, stall or pause here; otherwise do nothing."""
    if _hook is not None:
        hits[name] += 1
        _hook(name)


def wrap_origin(origin: T) -> T:
    """The origin itself, or what an installed chaos wrapper makes of it (same interface)."""
    if _origin_wrapper is None:
        return origin
    wrapped: T = _origin_wrapper(origin)
    return wrapped


def install_hook(hook: FaultHook | None) -> None:
    """Install (or with None, remove) the process-wide fault hook. For the chaos tooling only."""
    global _hook
    _hook = hook


def install_origin_wrapper(wrapper: OriginWrapper | None) -> None:
    """Install (or with None, remove) the origin wrapper. For the chaos tooling only."""
    global _origin_wrapper
    _origin_wrapper = wrapper
