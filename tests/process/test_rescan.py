"""SIGHUP rescans without remounting: additions, removals and retags show at once, and a changed file
never serves the old bytes from the kernel's page cache."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import mutagen
import pytest

from tests.process.conftest import Spawn, assert_clean_log, wait_until


def _rescanned(daemon_log: Callable[[], str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if re.search(r"rescan \([^)]*SIGHUP[^)]*\) finished", daemon_log()):
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


def test_changes_appear_by_themselves_without_remount(library_copy: Path, spawn: Spawn) -> None:
    daemon = spawn([library_copy])
    wait_until(lambda: "watching " in daemon.log(), "the watcher to start", daemon.log)
    mnt = daemon.mountpoint
    album = library_copy / "Music" / "Sigur Rós" / "Ágætis byrjun"
    new_album = library_copy / "Incoming" / "new album"
    new_album.mkdir(parents=True)
    for number in range(1, 6):  # a whole album copied in: one debounced rescan
        shutil.copy(album / "track3.ogg", new_album / f"{number}.ogg")
        tags = mutagen.File(new_album / f"{number}.ogg")
        tags["album"], tags["title"], tags["tracknumber"], tags["date"] = (
            "Fresh",
            f"Song {number}",
            str(number),
            [],
        )
        tags.save()
    shown = mnt / "Sigur Rós" / "Fresh"
    took = wait_until(lambda: shown.is_dir() and len(list(shown.iterdir())) == 5, "the new album", daemon.log)
    (library_copy / "old_stuff" / "winamp" / "bjork - human behaviour.mp3").unlink()
    wait_until(lambda: not (mnt / "Björk" / "Debut (1993)").exists(), "the removal", daemon.log)
    retag = mutagen.File(album / "track2.ogg")
    retag["title"] = "Retitled"
    retag.save()
    wait_until(
        lambda: (mnt / "Sigur Rós" / "Ágætis byrjun (1999)" / "02 Retitled.ogg").exists(),
        "the retag",
        daemon.log,
    )
    assert took < 10
    assert_clean_log(daemon)
