"""Which listings mode a mount gets, from what the installed pyfuse3 says it can do and
MUSICFS_LISTINGS; modules here are stand-ins carrying only a version and, for the patched build,
its `FEATURES`."""

from __future__ import annotations

from types import ModuleType

import pytest

from musicfs.core.errors import ConfigError
from musicfs.fs.listings import Listings, choose


def _pyfuse3(version: str, *features: str) -> ModuleType:
    module = ModuleType("pyfuse3")
    module.__version__ = version  # type: ignore[attr-defined]
    if features:
        module.FEATURES = frozenset(features)  # type: ignore[attr-defined]
    return module


PATCHED = _pyfuse3("3.5.0+musicfs.1", "opendir_fileinfo", "readdir_inode_without_opendir")
STOCK = _pyfuse3("3.5.0")
ONLY_FILEINFO = _pyfuse3("3.6.0", "opendir_fileinfo")  # a build that cannot hand readdir the inode


def test_the_patched_build_gets_kernel_cached_listings() -> None:
    chosen = choose(PATCHED, {})
    assert chosen.kernel
    assert chosen.describe() == "listings: kernel-cached (pyfuse3 3.5.0+musicfs.1)"


@pytest.mark.parametrize("module", [STOCK, ONLY_FILEINFO])
def test_a_pyfuse3_without_the_feature_falls_back_to_daemon_listings(module: ModuleType) -> None:
    chosen = choose(module, {"MUSICFS_LISTINGS": "auto"})
    assert not chosen.kernel
    assert chosen.describe().startswith(f"listings: daemon (pyfuse3 {module.__version__} cannot ")
    assert "scripts/build-pyfuse3.sh" in chosen.describe()


def test_the_variable_forces_a_mode_whatever_its_case() -> None:
    assert choose(PATCHED, {"MUSICFS_LISTINGS": "Daemon"}) == Listings(False, "MUSICFS_LISTINGS=daemon")
    assert choose(PATCHED, {"MUSICFS_LISTINGS": "kernel"}) == Listings(True, "MUSICFS_LISTINGS=kernel")
    assert choose(STOCK, {"MUSICFS_LISTINGS": "daemon"}).kernel is False
    assert choose(STOCK, {"MUSICFS_LISTINGS": " "}).kernel is False  # blank: auto


def test_kernel_listings_forced_on_a_pyfuse3_that_cannot_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"pyfuse3 3\.5\.0 does not \(scripts/build-pyfuse3\.sh builds one\)"
    ):
        choose(STOCK, {"MUSICFS_LISTINGS": "kernel"})


def test_a_mode_that_does_not_exist_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be kernel, daemon or auto, not 'fast'"):
        choose(PATCHED, {"MUSICFS_LISTINGS": "fast"})
