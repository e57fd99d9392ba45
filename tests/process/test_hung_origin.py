"""5.1 / 3.8 against the real daemon: a file whose origin reads hang (a dead NAS) gives EIO at the
read deadline, while listings and other files keep answering at once; 100 readers never deadlock."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from chaos.oracle import demo_view
from chaos.origins import OriginFault
from chaos.plan import FaultPlan
from tests.process.conftest import Spawn, wait_until

HUNG_ALBUM = Path("Sigur Rós") / "Ágætis byrjun (1999)"
OTHER = Path("Björk") / "Homogenic (1997)" / "03 Unravel.flac"
DEADLINE = 2.0


@pytest.mark.allow_log(r"open failed: .* no answer within")
@pytest.mark.failure_mode("5.1")
@pytest.mark.failure_mode("3.8")
def test_hung_file_gives_eio_at_the_deadline_while_the_rest_stays_fast(
    library_copy: Path, spawn: Spawn
) -> None:
    plan = FaultPlan(origin_faults=[OriginFault("Music/Sigur Rós/Ágætis byrjun/*", "hang")])
    daemon = spawn([library_copy], args=["--read-timeout", str(DEADLINE)], plan=plan)
    mnt = daemon.mountpoint
    expected = demo_view(library_copy)[str(OTHER)].read_bytes()
    outcome: dict[str, object] = {}

    def read_hung() -> None:
        started = outcome["hung_started"] = time.monotonic()
        try:
            (mnt / HUNG_ALBUM / "01 Svefn-g-englar.ogg").read_bytes()
            outcome["hung"] = "no error"
        except OSError as exc:
            outcome["hung"] = exc.errno
        outcome["hung_after"] = time.monotonic() - started

    reader = threading.Thread(target=read_hung, daemon=True)
    reader.start()
    wait_until(lambda: daemon.hits().get("origin.hang", 0) >= 1, "a daemon thread to hang", daemon.log)
    assert reader.is_alive(), "the hung read returned before its deadline"
    started = time.monotonic()
    assert sorted(p.name for p in mnt.iterdir())
    assert os.stat(mnt / HUNG_ALBUM).st_mode
    assert (mnt / OTHER).read_bytes() == expected
    others_took = time.monotonic() - started
    reader.join(DEADLINE + 10)
    assert not reader.is_alive()
    assert outcome["hung"] == errno.EIO
    assert DEADLINE - 0.3 <= float(outcome["hung_after"]) < DEADLINE + 3  # type: ignore[arg-type]
    assert others_took < 1.0, f"listing and another file took {others_took:.2f} s during the hang"
    hung_until = float(outcome["hung_started"]) + float(outcome["hung_after"])  # type: ignore[arg-type]
    assert started + others_took < hung_until, "the other requests did not run while the read hung"

    daemon.signal(signal.SIGTERM)  # a thread is still stuck in the dead origin: the exit must not wait
    assert daemon.wait_exit(30) == 0
    assert mount_at(mnt) is None
