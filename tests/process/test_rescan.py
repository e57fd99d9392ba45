"""SIGHUP rescans without remounting: additions, removals and retags show at once, and a changed file
never serves the old bytes from the kernel's page cache."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import mutagen
import pytest

from tests.process.conftest import Spawn, assert_clean_log


def _rescanned(daemon_log: Callable[[], str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "rescan (SIGHUP) finished" in daemon_log():
            return
        time.sleep(0.02)
    raise AssertionError(f"the SIGHUP rescan did not finish within 30 s:\n{daemon_log()}")


@pytest.mark.failure_mode("2.1")
def test_sighup_rescan_shows_changes_without_remount(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy])
    mnt = daemon.mountpoint
    album = mnt / "Sigur Rós" / "Ágætis byrjun (1999)"
    kept = album / "01 Svefn-g-englar.ogg"
    before = kept.read_bytes()  # now in the kernel's page cache
    assert (mnt / "Björk" / "Debut (1993)").is_dir()
    listing = sorted(p.name for p in album.iterdir())

    origin = library_copy / "Music" / "Sigur Rós" / "Ágætis byrjun"
    shutil.copy(origin / "track3.ogg", origin / "track4.ogg")
    added = mutagen.File(origin / "track4.ogg")
    added["title"], added["tracknumber"] = "Olsen Olsen", "4"
    added.save()
    changed = mutagen.File(origin / "track1.ogg")
    changed["genre"] = "Changed Genre"  # same path in the view, different bytes
    changed.save()
    (library_copy / "old_stuff" / "winamp" / "bjork - human behaviour.mp3").unlink()

    daemon.signal(signal.SIGHUP)
    _rescanned(daemon.log)
    assert sorted(p.name for p in album.iterdir()) == sorted([*listing, "04 Olsen Olsen.ogg"])
    assert not (mnt / "Björk" / "Debut (1993)").exists()
    after = kept.read_bytes()
    assert after == (origin / "track1.ogg").read_bytes() != before
    assert os.stat(kept).st_size == len(after)
    assert_clean_log(daemon)
