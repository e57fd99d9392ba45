"""The command line as a user meets it: `musicfs tree`, `musicfs scan`, and files over 4 GiB."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chaos.oracle import demo_view
from musicfs.demo import DemoLibrary
from tests.process.conftest import Spawn, musicfs


def test_tree_prints_the_layout_and_honours_the_template(demo_library: DemoLibrary) -> None:
    done = musicfs("tree", "--origin", str(demo_library.root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Sigur Rós/Ágætis byrjun (1999)/01 Svefn-g-englar.ogg" in lines
    custom = musicfs("tree", "--origin", str(demo_library.root), "--template", "{genre}/{artist} - {title}")
    assert custom.returncode == 0, custom.stderr
    assert "Post-Rock/Sigur Rós - Svefn-g-englar.ogg" in custom.stdout.splitlines()


def test_scan_builds_the_index_and_a_second_scan_changes_nothing(
    demo_library: DemoLibrary, tmp_path: Path
) -> None:
    args = ("scan", "--origin", str(demo_library.root), "--state-dir", str(tmp_path / "state"))
    first = musicfs(*args)
    assert first.returncode == 0, first.stderr
    files = len(demo_library.tracks) + len(demo_library.covers)
    assert f"{files} new" in first.stdout
    second = musicfs(*args)
    assert f"{demo_library.root}: {files} files, unchanged (" in second.stdout


@pytest.mark.allow_log(r"cannot read tags of .*live set\.flac")
def test_reads_beyond_4_gib_are_exact(tmp_path: Path, spawn: Spawn) -> None:
    origin = tmp_path / "big-origin"
    origin.mkdir()
    big = origin / "huge live set.flac"
    size = 5 * 1024**3 + 12345
    marker = os.urandom(1 << 20)
    with open(big, "wb") as handle:  # sparse: only the marker takes disk space
        handle.truncate(size)
        handle.seek(4 * 1024**3 + 777)
        handle.write(marker)
    daemon = spawn([origin])
    shown = daemon.mountpoint / "Unknown Artist" / "Unknown Album" / "huge live set.flac"
    assert shown.stat().st_size == size
    with open(shown, "rb") as handle:
        handle.seek(4 * 1024**3 + 777)
        assert handle.read(len(marker)) == marker
        handle.seek(size - 10)
        assert handle.read(100) == b"\0" * 10


def test_mountpoint_and_origins_from_a_config_file(
    demo_library: DemoLibrary, spawn: Spawn, tmp_path: Path
) -> None:
    extra = tmp_path / "second-origin"
    extra.mkdir()
    shutil.copy(demo_library.root / "Music/Sigur Rós/demos/untitled 1.opus", extra / "u1.opus")  # a duplicate
    config = tmp_path / "musicfs.toml"
    config.write_text(
        f'[[origin]]\npath = "{extra}"\npriority = 2\n'
        f'[[origin]]\npath = "{demo_library.root}"\npriority = 1\n'
    )
    daemon = spawn([], args=["--config", str(config)])
    view = "Sigur Rós/Untitled Demos/01 Untitled #1.opus"
    shown = daemon.mountpoint / view
    assert len(list(shown.parent.iterdir())) == 2  # the copy in the second origin is shown once
    preferred = demo_view(demo_library.root)[view]  # same bytes in both: only the attribute can tell
    assert os.getxattr(shown, "user.musicfs.origin") == os.fsencode(preferred)
