"""Spawning the real `musicfs mount` as a user would, and cleaning up after it whatever happens.

Owns: `DaemonProcess`, which starts the console script in its own process group, waits until the mount
answers, delivers signals or SIGKILL to that one PID, and in `cleanup` lazily unmounts the mountpoint
and kills the process by PID. It never stops a process it did not start.
Concurrency: used from one test thread; the daemon's output goes to a log file read after the fact.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.mountinfo import mount_at

MUSICFS = str(Path(sys.executable).with_name("musicfs"))


class DaemonError(AssertionError):
    """The daemon did not do what the test waited for; the message carries its log."""


class DaemonProcess:
    """One `musicfs mount` process under test."""

    def __init__(
        self,
        mountpoint: Path,
        origins: Sequence[Path],
        state_dir: Path,
        log_path: Path,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.mountpoint = mountpoint
        self.log_path = log_path
        args = [MUSICFS, "mount", str(mountpoint), "--state-dir", str(state_dir), *extra_args]
        for origin in origins:
            args += ["--origin", str(origin)]
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "daemon not started"
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the mountpoint is a MusicFS mount served by this process.

        The root's `user.musicfs.pid` must name our PID: a getxattr always reaches the daemon, while a
        stat may be answered from the kernel's cache, even by a dead mount.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DaemonError(f"daemon exited with {self.process.returncode} before it was ready:\n{self.log()}")
            if self.serving_pid() == self.pid:
                return
            time.sleep(0.02)
        raise DaemonError(f"mount not ready within {timeout} s:\n{self.log()}")

    def serving_pid(self) -> int | None:
        """The PID the mount at our mountpoint reports, or None when nothing live answers."""
        entry = mount_at(self.mountpoint)
        if entry is None or entry.fstype != "fuse.musicfs":
            return None
        try:
            return int(os.getxattr(self.mountpoint, "user.musicfs.pid"))
        except (OSError, ValueError):
            return None

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(f"daemon still running after {timeout} s:\n{self.log()}") from None

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def cleanup(self) -> None:
        """Kill the daemon (by PID, if still running) and lazily unmount; never raises."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        if mount_at(self.mountpoint) is not None:
            subprocess.run(
                ["fusermount3", "-u", "-z", "--", str(self.mountpoint)],
                check=False,
                capture_output=True,
                timeout=10,
            )
