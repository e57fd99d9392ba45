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


def test_version_names_the_fuse_stack_and_its_fast_paths() -> None:
    # The facts, asked here of the loaded libraries themselves: pyfuse3's own version, libfuse's
    # fuse_pkgversion(), and whether pyfuse3 can mark an opened folder cacheable at all.
    import ctypes

    import pyfuse3

    from musicfs import __version__

    libfuse = ctypes.CDLL("libfuse3.so.3")
    libfuse.fuse_pkgversion.restype = ctypes.c_char_p
    libfuse_version = libfuse.fuse_pkgversion().decode()
    done = musicfs("--version")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"musicfs {__version__}"
    assert lines[1] == f"pyfuse3 {pyfuse3.__version__}, libfuse {libfuse_version}"
    listings = "yes" if "readdir_inode_without_opendir" in getattr(pyfuse3, "FEATURES", ()) else "no"
    assert lines[2].startswith(f"kernel-cached folder listings: {listings}"), lines
    # No pyfuse3 release can hand the kernel a backing file, whatever libfuse offers (3.16+).
    assert lines[3].startswith("passthrough reads: no ("), lines
    has_it = "has it" if hasattr(libfuse, "fuse_passthrough_open") else "has none"
    assert f"libfuse {libfuse_version} {has_it}" in lines[3], lines
    assert len(lines) == 4, lines
