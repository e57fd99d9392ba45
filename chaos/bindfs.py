"""A real FUSE mount of another program for tests and scenarios: bindfs, which can be frozen with
SIGSTOP (a NAS that stops answering), thawed with SIGCONT, or killed with -9 (a dead FUSE mount that
is not MusicFS's).

Owns: `Bindfs`. The caller starts bindfs itself in the foreground (`bindfs -f`), so it knows its PID
and never signals a process it did not start; `cleanup` thaws, stops and unmounts it whatever
happened. `freeze` returns only once every bindfs thread has stopped: a request sent after it is
never read by bindfs, so the process waiting for it stays killable (a request a FUSE server has
already read is waited for uninterruptibly by the kernel: a process with such a thread cannot exit
until the server answers).
Concurrency: used from one thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from chaos.freeze import freeze
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
        """SIGSTOP: every request to the mount now waits (a frozen NAS); returns once every thread
        of bindfs has stopped (`chaos.freeze`)."""
        freeze(self.pid)

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
