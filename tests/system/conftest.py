"""System-tier fixtures: a Debian 12 container booted with a real systemd, MusicFS installed inside.

The tier fails (it never skips) when it cannot build or boot the machine: CI must prove it works.
The root filesystems are built once and cached (`tests/system/container.py`); each test boots its own
overlay of them, which is powered off, its processes and cgroups removed, even when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from musicfs.demo import DemoLibrary
from tests.system.container import Container, installed_rootfs, machine_lock
from tests.system.machine import MusicfsMachine

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
HERE = Path(__file__).resolve().parent
# A test's own steps get this long; its fixtures (the first build of the machine takes minutes, a boot
# seconds) have their own deadlines in container.py.
TEST_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the tests measured (`record_property`), shown also when xdist ran them."""
    measured = [
        (report.nodeid.rpartition("::")[2], name, value)
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call" and report.nodeid.startswith("tests/system/")
        for name, value in report.user_properties
    ]
    if measured:
        terminalreporter.section("measured under systemd")
        for test, name, value in measured:
            terminalreporter.write_line(f"{name}: {value}  ({test})")


@pytest.fixture(scope="session")
def installed() -> Path:
    """Debian 12 with MusicFS installed from this checkout by the README's set-up command."""
    with machine_lock():
        rootfs = installed_rootfs(SUITE, REPO)
    return rootfs


@pytest.fixture
def container(installed: Path, tmp_path: Path) -> Iterator[Container]:
    """A booted machine of its own; destroyed afterwards whatever happened."""
    machine = Container(installed, tmp_path / "machine")
    try:
        # A persistent journal, so a test can read what happened before a reboot or at poweroff.
        machine.path("/var/log/journal").mkdir(parents=True, exist_ok=True)
        machine.boot()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture
def service(container: Container, demo_library: DemoLibrary) -> MusicfsMachine:
    """The booted machine with the demo library as its origin and the unit installed, not started."""
    machine = MusicfsMachine(container, demo_library.root)
    machine.install_unit()
    return machine
