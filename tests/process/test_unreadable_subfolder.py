"""subfolder-unreadable: a folder inside an origin that cannot be listed for a while (a NAS share
mounted inside the music folder whose server died, a permissions hiccup) must not delete its tracks
from the view. Only the origin's root had the "unavailable, nothing removed" rule; a subfolder the
walk could not list or stat was taken for deleted, so the next rescan removed its tracks and a
player dropped them from its database.

The real mechanism: the subfolder is a bindfs mount (a FUSE-mounted share) killed with SIGKILL by
the test, so every stat and listing of it fails with ENOTCONN, exactly as a dead network share
does; then `musicfs rescan`. The test knows which tracks it wrote where.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.bindfs import Bindfs
from musicfs.demo import DemoLibrary
from tests.process.albums import source_flac, write_album
from tests.process.conftest import Spawn, musicfs


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Bindfs]:
    """An origin folder with a share mounted inside it (the share's files live elsewhere)."""
    mount = Bindfs(tmp_path / "share-source", tmp_path / "origin" / "nas")
    mount.source.mkdir(parents=True)
    try:
        yield mount
    finally:
        mount.cleanup()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.allow_log(
    r"cannot stat .*: Transport endpoint is not connected",
    r"open failed: Transport endpoint is not connected",
)
@pytest.mark.failure_mode("subfolder-unreadable")
def test_a_subfolder_that_cannot_be_listed_keeps_its_tracks(
    demo_library: DemoLibrary, share: Bindfs, tmp_path: Path, spawn: Spawn
) -> None:
    source = source_flac(demo_library)
    local = write_album(source, tmp_path / "origin" / "local", artist="Here", album="Local", count=2)
    remote = write_album(source, share.source / "album", artist="There", album="Shared", count=3)
    share.start()
    daemon = spawn([tmp_path / "origin"])
    mnt = daemon.mountpoint
    for view, origin_file in {**local, **remote}.items():
        assert (mnt / view).read_bytes() == origin_file.read_bytes(), view

    share.kill9()  # the share's server dies: its folder now answers ENOTCONN
    with pytest.raises(OSError) as dead:
        os.stat(share.mountpoint / "album")
    assert dead.value.errno == errno.ENOTCONN
    done = musicfs("rescan", str(mnt), timeout=60)
    assert done.returncode == 0, done.stderr

    assert _listing(mnt / "There" / "Shared") == sorted(v.name for v in remote), daemon.log()
    with pytest.raises(OSError) as unreadable:  # out of reach: an error, never taken for deleted
        (mnt / next(iter(remote))).read_bytes()
    assert unreadable.value.errno == errno.EIO
    assert (mnt / next(iter(local))).read_bytes() == next(iter(local.values())).read_bytes()
    assert "cannot stat" in daemon.log() or "cannot list" in daemon.log()
