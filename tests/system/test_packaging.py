"""MusicFS installed as users install a Python program: `pipx install` and `pip install` into a fresh
virtualenv, on the Debian 12 machine (not booted; with the network, as an install needs it).

The machine already has what pyfuse3 builds against (the README's set-up ran there); the installs
start from the checkout at /opt/musicfs and run from `/`, so nothing of the checkout is importable
but what the wheel carries: musicfs, and not the chaos tooling or the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from musicfs import __version__
from tests.system.container import REPO_IN_CONTAINER, Overlay, run_in_rootfs

SCRIPT = f"""
set -eu
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pipx > /dev/null
cd /
pipx install {REPO_IN_CONTAINER} > /dev/null
echo "pipx: $(~/.local/bin/musicfs --version | head -1)"
python3 -m venv /tmp/venv
/tmp/venv/bin/pip install -q {REPO_IN_CONTAINER}
echo "pip: $(/tmp/venv/bin/musicfs --version | head -1)"
/tmp/venv/bin/pip wheel -q --no-deps -w /tmp/wheel {REPO_IN_CONTAINER}
/tmp/venv/bin/python - <<'PY'
import glob, importlib.util, zipfile
(wheel,) = glob.glob("/tmp/wheel/musicfs-*.whl")
tops = sorted({{name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}})
print("wheel holds:", " ".join(tops))
print("chaos importable:", importlib.util.find_spec("chaos") is not None)
print("tests importable:", importlib.util.find_spec("tests") is not None)
PY
"""
TIMEOUT = 1200


@pytest.mark.timeout(TIMEOUT, func_only=False)
def test_pipx_and_pip_install_give_musicfs_without_the_chaos_tooling(installed: Path, tmp_path: Path) -> None:
    machine = Overlay(installed, tmp_path / "packaging")
    try:
        log = tmp_path / "packaging.log"
        done = run_in_rootfs(machine.root, ["bash", "-c", SCRIPT], log=log, chdir="/", timeout=TIMEOUT)
        output = log.read_text(errors="replace")
        assert done.returncode == 0, output[-6000:]
        lines = output.splitlines()
        assert f"pipx: musicfs {__version__}" in lines and f"pip: musicfs {__version__}" in lines, output
        assert f"wheel holds: musicfs musicfs-{__version__}.dist-info" in lines, output
        assert "chaos importable: False" in lines and "tests importable: False" in lines, output
    finally:
        machine.remove()
