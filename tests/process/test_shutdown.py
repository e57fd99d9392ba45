"""How the real daemon ends when things are not fine.

- 2.3: reads stuck in a frozen origin (bindfs stopped with SIGSTOP) are cut at the drain deadline,
  and the shutdown log says truly how many were cut.
- 2.7: a crash of the request loop leaves the mount dead (players see an error, not an empty
  library) and exits non-zero, so systemd restarts MusicFS; the next start cleans the dead mount.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from chaos.plan import FaultPlan, FaultRule
from tests.process.bulk import bulk_library
from tests.process.conftest import MountBindfs, Spawn, assert_clean_log, status_of, wait_until

HUNG_READS = 9


@pytest.mark.failure_mode("2.3")
def test_reads_cut_at_the_drain_deadline_are_counted_in_the_log(
    tmp_path: Path, spawn: Spawn, bindfs: MountBindfs
) -> None:
    views = bulk_library(tmp_path / "nas-disk", HUNG_READS)
    nas = bindfs(tmp_path / "nas-disk", tmp_path / "nas")
    config = tmp_path / "musicfs.toml"
    config.write_text("drain_timeout = 1\nread_timeout = 120\nhealth_interval = 600\n")
    daemon = spawn([nas.mountpoint], args=["--config", str(config), "--cache-dir", str(tmp_path / "cache")])
    descriptors = [
        os.open(daemon.mountpoint / view, os.O_RDONLY) for view in views
    ]  # opened while it answers
    outcomes: list[int | None] = []

    def read(fd: int) -> None:
        try:
            os.pread(fd, 65536, 0)
            outcomes.append(None)
        except OSError as exc:
            outcomes.append(exc.errno)

    try:
        nas.freeze()
        readers = [threading.Thread(target=read, args=(fd,), daemon=True) for fd in descriptors]
        for reader in readers:
            reader.start()
        wait_until(
            lambda: status_of(daemon.mountpoint)["reads_in_flight"] == HUNG_READS,
            f"{HUNG_READS} reads stuck in the frozen origin",
            daemon.log,
        )
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
        for reader in readers:
            reader.join(10)
        assert mount_at(daemon.mountpoint) is None
        log = daemon.log()
        assert f"shutting down (SIGTERM): {HUNG_READS} reads in flight" in log
        assert "request loop cut short in 1.0" in log and f"({HUNG_READS} reads in flight)" in log, log
        assert len(outcomes) == HUNG_READS and None not in outcomes, outcomes  # each got an error
    finally:
        for fd in descriptors:
            os.close(fd)


@pytest.mark.allow_log(
    r"the request loop crashed: leaving the mount",
    r"cleaning a stale fuse.musicfs mount",
    r"the last run did not stop cleanly",
    r"a bug in the request loop",
    r"^Traceback",
)
@pytest.mark.allow_log(r"internal error \(a bug in MusicFS")
@pytest.mark.failure_mode("2.7")
def test_a_crashed_request_loop_leaves_a_dead_mount_for_the_next_start(tmp_path: Path, spawn: Spawn) -> None:
    views = bulk_library(tmp_path / "origin", 10)
    crash = FaultPlan([FaultRule("service.ready", "raise", message="a bug in the request loop")])
    first = spawn([tmp_path / "origin"], plan=crash, ready=False)
    assert first.wait_exit(30) == 70  # non-zero: systemd's Restart=on-failure starts it again
    log = first.log()
    assert "the request loop crashed: leaving the mount" in log and "Traceback" in log
    entry = mount_at(first.mountpoint)
    assert entry is not None and entry.fstype == "fuse.musicfs", "the mount must stay, dead, not empty"
    with pytest.raises(OSError) as error:
        os.listdir(first.mountpoint)
    assert error.value.errno == errno.ENOTCONN  # a player sees an error, never an empty library

    second = spawn([tmp_path / "origin"], state_dir=first.state_dir)
    assert "cleaning a stale fuse.musicfs mount" in second.log()
    for view, origin_file in views.items():
        assert (second.mountpoint / view).read_bytes() == origin_file.read_bytes(), view
    second.signal(signal.SIGTERM)
    assert second.wait_exit() == 0
    assert_clean_log(second)
