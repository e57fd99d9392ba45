"""paths-overlap and 7.4 in the preflight rules: real folders and symlinks, real /proc, /sys and /dev;
overlaps are refused with the documented exit code before anything is created, and a path that did
not answer is never refused for that alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from musicfs.core.config import Config, OriginConfig
from musicfs.core.errors import MountpointError, OriginConfigError, StateDirError, UserError
from musicfs.daemon.preflight import PathState, check_origins, check_overlaps, inspect


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("music", "music2", "mnt", "state", "cache")}
    for name in ("music", "music2", "mnt"):
        paths[name].mkdir()
    (tmp_path / "link-to-music").symlink_to(paths["music"])
    paths["link"] = tmp_path / "link-to-music"
    return paths


def _config(layout: dict[str, Path], **changes: Path | None) -> Config:
    values: dict[str, Path | None] = {
        "origin": layout["music"],
        "mountpoint": layout["mnt"],
        "state_dir": layout["state"],
        "cache_dir": layout["cache"],
    }
    values.update(changes)
    origin = values.pop("origin")
    assert origin is not None
    return Config(origins=(OriginConfig(origin, 0),), **values)  # type: ignore[arg-type]


def _refusal(config: Config) -> UserError | None:
    try:
        check_overlaps(config, inspect(config))
    except UserError as exc:
        return exc
    return None


@pytest.mark.failure_mode("paths-overlap")
@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"cache_dir": "music"}, StateDirError, "cache dir"),
        ({"cache_dir": "music/.cache/musicfs"}, StateDirError, "cache dir"),
        ({"cache_dir": "link/cache"}, StateDirError, "cache dir"),
        ({"state_dir": "music"}, StateDirError, "state dir"),
        ({"state_dir": "link/.state"}, StateDirError, "state dir"),
        ({"cache_dir": "mnt/cache"}, StateDirError, "inside the mountpoint"),
        ({"state_dir": "mnt/state"}, StateDirError, "inside the mountpoint"),
        ({"mountpoint": "music"}, OriginConfigError, "inside an origin"),
        ({"mountpoint": "link/sub"}, OriginConfigError, "inside an origin"),
        ({"origin": "mnt/music"}, OriginConfigError, "inside the mountpoint"),
    ],
)
def test_overlaps_are_refused(
    layout: dict[str, Path], changes: dict[str, str], error: type[UserError], words: str
) -> None:
    chosen = {
        key: layout[value.split("/")[0]].joinpath(*value.split("/")[1:]) for key, value in changes.items()
    }
    refusal = _refusal(_config(layout, **chosen))
    assert isinstance(refusal, error) and words in str(refusal), refusal
    assert refusal.exit_code == {StateDirError: 5, OriginConfigError: 3}[error]
    assert "\n" not in str(refusal)
    assert sorted(os.listdir(layout["music"])) == []  # nothing was created anywhere in the origin


@pytest.mark.failure_mode("paths-overlap")
@pytest.mark.parametrize("mountpoint", ["/proc/self", "/proc", "/sys/kernel", "/dev/shm", "/dev"])
def test_a_mountpoint_in_a_kernel_filesystem_is_refused(layout: dict[str, Path], mountpoint: str) -> None:
    refusal = _refusal(_config(layout, mountpoint=Path(mountpoint)))
    assert isinstance(refusal, MountpointError) and refusal.exit_code == 4
    assert mountpoint.split("/")[1] in str(refusal)


@pytest.mark.failure_mode("paths-overlap")
def test_a_symlink_to_a_kernel_filesystem_is_refused(layout: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/sys/kernel")
    refusal = _refusal(_config(layout, mountpoint=tmp_path / "innocent" / "sub"))
    assert isinstance(refusal, MountpointError)


def test_neighbours_that_only_share_a_prefix_are_fine(layout: dict[str, Path]) -> None:
    config = _config(layout, mountpoint=layout["music2"], state_dir=layout["music2"].with_name("music-state"))
    assert _refusal(config) is None
    assert _refusal(_config(layout)) is None


def test_scan_without_a_mountpoint_ignores_the_cache_dir(layout: dict[str, Path]) -> None:
    assert _refusal(_config(layout, mountpoint=None, cache_dir=layout["music"] / "cache")) is None


def test_inspect_tells_what_each_path_is(layout: dict[str, Path]) -> None:
    found = inspect(_config(layout, origin=layout["link"]))
    origin = found.origins[0]
    assert origin.answered and origin.exists and origin.is_dir and origin.readable
    assert origin.real == str(layout["music"])  # the symlink resolved
    assert found.state_dir.answered and not found.state_dir.exists  # created later, not by a check


@pytest.mark.failure_mode("7.4")
def test_an_origin_that_did_not_answer_is_left_to_the_origin_wait(layout: dict[str, Path]) -> None:
    config = _config(layout)
    found = inspect(config)
    hung = PathState(layout["music"], str(layout["music"]), answered=False)
    check_origins(
        config,
        type(found)(
            origins=(hung,), mountpoint=found.mountpoint, state_dir=found.state_dir, cache_dir=found.cache_dir
        ),
        lambda _: False,
    )
    missing = PathState(layout["music"], str(layout["music"]))
    with pytest.raises(OriginConfigError, match="does not exist"):
        check_origins(
            config,
            type(found)(
                origins=(missing,),
                mountpoint=found.mountpoint,
                state_dir=found.state_dir,
                cache_dir=found.cache_dir,
            ),
            lambda _: False,
        )
