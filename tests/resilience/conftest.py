"""Resilience-tier fixtures: the real app, built in-process by the composition root.

`build_app` runs `musicfs.daemon.app.assemble` on a Config of the test's origins, as `musicfs mount`
does (preflight, lock, index, first scan, gateways, operations), without mounting: a test drives the
FUSE handlers of `service.parts.operations` directly. With `faulty=True` every origin is a
`chaos.origins.FaultyOrigin` without faults; the test arms it (`origin.faults = (...)`) once the
first scan is done. Everything it built is released at the test's end, in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chaos.origins import origin_wrapper
from musicfs.core.config import build_config
from musicfs.daemon.app import StepLog, as_built, assemble
from musicfs.daemon.notify import Notifier
from musicfs.daemon.service import Service
from musicfs.daemon.signals import StopSignals

BuildApp = Callable[..., Service]


@pytest.fixture
def build_app(tmp_path: Path) -> Iterator[BuildApp]:
    with ExitStack() as stack:

        def build(origins: list[Path], *, faulty: bool = False, **settings: Any) -> Service:
            mountpoint = tmp_path / "mnt"
            mountpoint.mkdir(exist_ok=True)
            values = {"origin": [str(o) for o in origins], "state_dir": str(tmp_path / "state")}
            config = build_config({}, {**values, "mountpoint": str(mountpoint), **settings})
            wrap = origin_wrapper([]) if faulty else as_built
            return assemble(config, stack, StepLog(), Notifier(), StopSignals(), wrap)

        yield build
