"""7.4: an origin that is already frozen when MusicFS starts (a NAS mounted through bindfs, whose
bindfs process is stopped with SIGSTOP) is waited for within `origin_wait`, then served offline: the
daemon becomes ready, the healthy origin's tracks read their own bytes, the frozen one's give EIO at
once, and SIGTERM still stops it with exit 0 and no mount left."""

from __future__ import annotations

import errno
import signal
import time
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from tests.process.bulk import bulk_library
from tests.process.conftest import MountBindfs, Spawn, assert_clean_log, status_of

ORIGIN_WAIT = 1.0
READY_WITHIN = 20.0  # preflight deadline + origin_wait + the cache's filesystem-type probe + mounting


@pytest.mark.allow_log(
    r"does not answer; waiting up to",
    r"did not answer within .* serving it offline",
    r"open failed: .* is offline: .* does not answer",
)
@pytest.mark.failure_mode("7.4")
def test_origin_frozen_before_start_is_served_offline_while_the_other_serves(
    tmp_path: Path, spawn: Spawn, bindfs: MountBindfs
) -> None:
    healthy = tmp_path / "local"
    healthy_views = bulk_library(healthy, 10)
    frozen_views = bulk_library(tmp_path / "nas-disk", 10, first_artist=1)
    nas = bindfs(tmp_path / "nas-disk", tmp_path / "nas")
    config = tmp_path / "musicfs.toml"
    config.write_text(f"origin_wait = {ORIGIN_WAIT}\nhealth_interval = 0.5\n")
    args = ["--config", str(config), "--cache-dir", str(tmp_path / "cache")]

    first = spawn([healthy, nas.mountpoint], args=args)  # the index learns both origins
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0

    nas.freeze()
    started = time.monotonic()
    second = spawn([healthy, nas.mountpoint], args=args, ready=False)
    second.wait_ready(timeout=READY_WITHIN + 10)
    took = time.monotonic() - started
    assert took < READY_WITHIN, f"ready only after {took:.1f} s"
    log = second.log()
    assert f"origin {nas.mountpoint} does not answer; waiting up to {ORIGIN_WAIT:g} s" in log
    assert f"origin {nas.mountpoint} did not answer within {ORIGIN_WAIT:g} s; serving it offline" in log

    mnt = second.mountpoint
    for view, origin_file in healthy_views.items():
        assert (mnt / view).read_bytes() == origin_file.read_bytes(), view
    for view in frozen_views:
        assert (mnt / view).stat().st_size > 0  # the index still shows it: not a deleted library
        begun = time.monotonic()
        with pytest.raises(OSError) as error:
            (mnt / view).read_bytes()
        assert error.value.errno == errno.EIO, view
        assert time.monotonic() - begun < 1.0, "a frozen origin must fail fast"
    states = {o["path"]: o["state"] for o in status_of(mnt)["origins"]}
    assert states == {str(healthy): "ok", str(nas.mountpoint): "offline"}

    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0
    assert mount_at(mnt) is None
    assert_clean_log(second)
