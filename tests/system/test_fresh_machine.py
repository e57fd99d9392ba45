"""The README's two commands on a fresh Debian: set up and mount the demo, then the test command.

A fresh machine is `debootstrap --variant=minbase` of the suite and nothing else (no Python, no
compiler, no systemd), the checkout copied in as a clone would be, run as root without a terminal.
Debian 12 by default (CI); `MUSICFS_FRESH_SUITES=trixie` (tox -e fresh-trixie) for Debian 13.
Each run starts from the pristine tree (an overlay), so it downloads what the commands install.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from chaos.oracle import DEMO_VIEW
from tests.system.container import (
    Overlay,
    copy_repository,
    fresh_rootfs,
    machine_lock,
    repository_files,
    run_in_rootfs,
)
from tests.system.machine import TRACK

REPO = Path(__file__).resolve().parents[2]
SUITES = os.environ.get("MUSICFS_FRESH_SUITES", "bookworm").split(",")
CHECKOUT = "/root/musicfs"
# Both commands download and build what they need (apt, pip, pyfuse3), then tox runs the unit tier.
TIMEOUT = 2400


def _script() -> str:
    """Inside the fresh machine: the README's mount command in the background until a track reads
    with the bytes of the demo file the oracle names, `musicfs unmount`, then the test command."""
    view = shlex.quote(f"music/{TRACK}")
    origin = shlex.quote(f"demo-library/{DEMO_VIEW[TRACK]}")
    return f"""
set -u
bash scripts/mount-demo.sh > mount-demo.log 2>&1 &
demo=$!
for _ in $(seq 1200); do
    grep -q " $PWD/music " /proc/self/mountinfo && break
    kill -0 $demo 2>/dev/null || break
    sleep 0.5
done
cat mount-demo.log
cmp {view} {origin} || {{ echo "FAILED: the track does not read as its origin file"; exit 1; }}
echo "the track reads as its origin file"
.venv/bin/musicfs unmount music || exit 1
wait $demo || {{ echo "FAILED: mount-demo.sh exited $?"; exit 1; }}
bash scripts/test.sh -e unit || {{ echo "FAILED: the test command"; exit 1; }}
"""


@pytest.mark.timeout(TIMEOUT, func_only=False)
@pytest.mark.parametrize("suite", SUITES)
def test_the_readmes_commands_on_a_fresh_debian(suite: str, tmp_path: Path) -> None:
    with machine_lock():
        lower = fresh_rootfs(suite)
    machine = Overlay(lower, tmp_path / "fresh")
    try:
        copy_repository(REPO, repository_files(REPO), machine.root / CHECKOUT.lstrip("/"))
        log = tmp_path / "fresh.log"
        done = run_in_rootfs(
            machine.root,
            ["bash", "-c", _script()],
            log=log,
            chdir=CHECKOUT,
            binds=["/dev/fuse"],
            timeout=TIMEOUT,
        )
        output = log.read_text(errors="replace")
        assert done.returncode == 0, output[-6000:]
        assert "the track reads as its origin file" in output
    finally:
        machine.remove()
