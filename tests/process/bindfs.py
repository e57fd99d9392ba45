"""A real FUSE mount of another program for process tests: bindfs, which a test can freeze with
SIGSTOP (a NAS that stops answering), thaw with SIGCONT, or kill -9 (a dead FUSE mount that is not
MusicFS's). The test starts bindfs itself in the foreground (`bindfs -f`), so it knows its PID and
never signals a process it did not start; `cleanup` thaws, stops and unmounts it whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from chaos.mountinfo import mount_at

START_TIMEOUT = 10.0


class Bindfs:
    """`bindfs -f SOURCE MOUNTPOINT`, run by the test."""

    def __init__(self, source: Path, mountpoint: Path) -> None:
        self.source = source
        self.mountpoint = mountpoint
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Bindfs:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["bindfs", "-f", str(self.source), str(self.mountpoint)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while mount_at(self.mountpoint) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"bindfs did not mount {self.mountpoint}")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "bindfs not started"
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP: every request to the mount now waits (a frozen NAS). Returns once every thread of
        bindfs has stopped: one still running could take a request and then stop holding it, and the
        kernel waits out a request its server has taken even for a process that is exiting."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(state == "T" for state in self._thread_states()):
            if time.monotonic() > deadline:
                raise AssertionError(f"bindfs {self.pid} did not stop: {self._thread_states()}")
            time.sleep(0.005)

    def _thread_states(self) -> list[str]:
        states = []
        for thread in os.listdir(f"/proc/{self.pid}/task"):
            with (
                contextlib.suppress(FileNotFoundError, ProcessLookupError),
                open(f"/proc/{self.pid}/task/{thread}/stat") as stat,
            ):
                states.append(stat.read().rsplit(")", 1)[1].split()[0])
        return states

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill9(self) -> None:
        """SIGKILL: the mount stays, dead (ENOTCONN), and it is not MusicFS's."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def cleanup(self) -> None:
        """Thaw, stop and unmount; never raises."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.thaw()
            self.process.terminate()  # bindfs unmounts on SIGTERM
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
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
