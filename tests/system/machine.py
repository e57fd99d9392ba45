"""MusicFS as a systemd service on a booted container, set up as the README tells an administrator.

Owns: `MusicfsMachine`, which writes the test's own origin (the demo library, copied in from the
host) and config, installs `dist/musicfs.service` from the checkout inside the machine with the
`dist/musicfs.service.d/checkout.conf` drop-in (MusicFS set up by `scripts/setup.sh` in
`/opt/musicfs`) plus any drop-ins a test adds, and asks systemd and the mount what they do.
The right bytes of a track come from the origin file on the host, never from the daemon.

Concurrency: one test thread.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from chaos.oracle import DEMO_VIEW
from tests.system.container import REPO_IN_CONTAINER, Container, ContainerError

UNIT = "musicfs.service"
MOUNTPOINT = "/srv/music"
ORIGIN = "/srv/origin"
CONFIG = "/etc/musicfs/musicfs.toml"
STATE_DIR = "/var/lib/musicfs"
MUSICFS = f"{REPO_IN_CONTAINER}/.venv/bin/musicfs"
DROP_IN_DIR = f"/etc/systemd/system/{UNIT}.d"
# A track of the demo library and its origin file: what "a track reads" means in these tests.
TRACK = "Sigur Rós/Ágætis byrjun (1999)/01 Svefn-g-englar.ogg"
TRACK_COUNT = sum(1 for view in DEMO_VIEW if not view.endswith((".jpg", ".png")))


class MusicfsMachine:
    """The booted `container` with the demo library at ORIGIN and MusicFS's unit installed."""

    def __init__(self, container: Container, library: Path) -> None:
        self.container = container
        self.library = library
        shutil.copytree(library, container.path(ORIGIN))
        config = container.path(CONFIG)
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[[origin]]\npath = "{ORIGIN}"\n')

    def install_unit(self, **drop_ins: str) -> None:
        """The unit and the checkout drop-in as the README installs them, plus `name=text` drop-ins."""
        c = self.container
        c.check(["install", "-m", "0644", f"{REPO_IN_CONTAINER}/dist/{UNIT}", f"/etc/systemd/system/{UNIT}"])
        c.check(
            [
                "install",
                "-D",
                "-m",
                "0644",
                f"{REPO_IN_CONTAINER}/dist/{UNIT}.d/checkout.conf",
                f"{DROP_IN_DIR}/checkout.conf",
            ]
        )
        for name, text in drop_ins.items():
            c.path(f"{DROP_IN_DIR}/{name}.conf").write_text(text)
        c.check(["systemctl", "daemon-reload"])

    def install_drop_in(self, name: str) -> None:
        """One of the checkout's `dist/musicfs.service.d/` drop-ins, installed as the README says."""
        self.container.check(
            ["install", "-m", "0644", f"{REPO_IN_CONTAINER}/dist/{UNIT}.d/{name}", f"{DROP_IN_DIR}/{name}"]
        )
        self.container.check(["systemctl", "daemon-reload"])

    def world_usable_fuse(self) -> None:
        """/dev/fuse as Debian makes it (0666: FUSE is for every user); the host's is bound in 0600.
        The container's own node replaces the bind mount (and nspawn's placeholder under it); the
        host's node is not touched."""
        self.container.check(["umount", "/dev/fuse"])
        self.container.check(["rm", "-f", "/dev/fuse"])
        self.container.check(["mknod", "-m", "0666", "/dev/fuse", "c", "10", "229"])

    def as_user(self, user: str, *command: str) -> list[str]:
        """`command` run as `user` with its groups (util-linux's runuser, in every Debian)."""
        return ["runuser", "-u", user, "--", *command]

    def systemctl(self, *args: str, timeout: float = 120) -> str:
        """`systemctl ARGS` inside; on a failure the error carries the unit's journal."""
        done = self.container.run(["systemctl", *args], timeout=timeout)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise ContainerError(
                f"systemctl {' '.join(args)} exited {done.returncode}:\n{output}{self.journal()}"
            )
        return done.stdout.decode(errors="replace")

    def show(self, *properties: str) -> dict[str, str]:
        """`systemctl show -p ...` of the unit as a dict."""
        text = self.systemctl("show", *(f"--property={name}" for name in properties), UNIT)
        return dict(line.partition("=")[::2] for line in text.splitlines() if line)

    def main_pid(self) -> int:
        return int(self.show("MainPID")["MainPID"])

    def kill(self, signal: str) -> None:
        """Send `signal` to the daemon alone (a minimal Debian has no kill(1): it comes with procps)."""
        self.systemctl("kill", "--kill-who=main", f"--signal={signal}", UNIT)

    def expected(self, view: str = TRACK) -> bytes:
        """The bytes the view path must give: read from the origin file the oracle names."""
        return (self.library / DEMO_VIEW[view]).read_bytes()

    def read(self, view: str = TRACK) -> bytes:
        """The bytes of `view` read through the mount inside the machine (fails if it cannot be read)."""
        done = self.container.run(["cat", f"{MOUNTPOINT}/{view}"])
        if done.returncode != 0:
            raise ContainerError(
                f"cat {view} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
            )
        return done.stdout

    def mounted(self) -> bool:
        """Whether anything is mounted at MOUNTPOINT inside the machine."""
        mountinfo = self.container.check(["cat", "/proc/self/mountinfo"])
        return any(line.split()[4] == MOUNTPOINT for line in mountinfo.splitlines())

    def journal(self, *args: str) -> str:
        """The unit's journal lines (of this boot unless `args` say otherwise)."""
        return self.container.check(["journalctl", "--no-pager", "-o", "short-monotonic", "-u", UNIT, *args])

    def wait_for(self, what: str, test: Callable[[], bool], timeout: float = 30) -> None:
        """Poll `test()` until it is true; fail naming `what` and the journal after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if test():
                return
            time.sleep(0.05)
        raise ContainerError(f"{what}: not within {timeout} s\n{self.journal()}")

    def wait_serving_again(self, old_pid: int, timeout: float = 60) -> float:
        """After the daemon `old_pid` died: seconds until a new one is active and the track reads right."""
        start = time.monotonic()

        def serving() -> bool:
            state = self.show("ActiveState", "MainPID")
            if state["ActiveState"] != "active" or int(state["MainPID"]) in (0, old_pid):
                return False
            done = self.container.run(["cat", f"{MOUNTPOINT}/{TRACK}"])
            return done.returncode == 0 and done.stdout == self.expected()

        self.wait_for("serving again after the daemon died", serving, timeout)
        return time.monotonic() - start
