"""Spawning the real `musicfs mount` as a user would, and cleaning up after it whatever happens.

Owns: `DaemonProcess`, which starts the console script in its own process group, waits until the mount
answers, delivers signals or SIGKILL to that one PID, and in `cleanup` lazily unmounts the mountpoint
and kills the process by PID. It never stops a process it did not start.
With a `FaultPlan`, it writes the plan (its `state_dir` a `<log stem>-chaos` folder beside the log) and
starts the daemon through the chaos launcher (`python -m chaos.launch PLAN musicfs-arguments`, see
`chaos/launch.py`), so the real command line runs with the plan installed; then `hits`,
`wait_paused` and `release` talk to it through files in that folder.
Concurrency: used from one test thread; the daemon's output goes to a log file, which `wait_log` polls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.launch import PLAN_INSTALLED
from chaos.mountinfo import mount_at
from chaos.plan import FaultPlan, paused_hit, read_hits, release_file

MUSICFS = str(Path(sys.executable).with_name("musicfs"))
CHECKOUT = Path(__file__).resolve().parents[1]  # the folder holding chaos/
POLL_SECONDS = 0.01


def threads_of(pid: int) -> str:
    """One line per thread of `pid`: name, state and where in the kernel it waits (for a process that
    does not exit: a thread in state D waits on a device or a FUSE request)."""
    lines = []
    with contextlib.suppress(OSError):
        for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda p: int(p.name)):
            with contextlib.suppress(OSError):
                name = (task / "comm").read_text().strip()
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                wchan = (task / "wchan").read_text().strip() or "-"
                lines.append(f"  {task.name} {name} state {state} wchan {wchan}")
    return "\n".join(lines) or "  (none readable)"


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
        plan: FaultPlan | None = None,
    ) -> None:
        self.mountpoint = mountpoint
        self.state_dir = state_dir
        self.log_path = log_path
        args = ["mount", str(mountpoint), "--state-dir", str(state_dir), *extra_args]
        for origin in origins:
            args += ["--origin", str(origin)]
        self.args = [MUSICFS, *args]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.plan: FaultPlan | None = None
        self.chaos_dir: Path | None = None
        if plan is not None:
            self._use_plan(plan)

    def _use_plan(self, plan: FaultPlan) -> None:
        chaos_dir = self.log_path.parent.resolve() / f"{self.log_path.stem}-chaos"
        shutil.rmtree(chaos_dir, ignore_errors=True)
        chaos_dir.mkdir(parents=True)
        self.chaos_dir = chaos_dir
        self.plan = plan.with_state_dir(chaos_dir)
        plan_file = chaos_dir / "plan.json"
        plan_file.write_text(self.plan.to_json())
        self.args = [sys.executable, "-m", "chaos.launch", str(plan_file), *self.args[1:]]
        # chaos is not in the musicfs wheel: the launcher finds it in the checkout, from any folder.
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), self.env.get("PYTHONPATH")]))

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
                raise DaemonError(
                    f"daemon exited with {self.process.returncode} before it was ready:\n{self.log()}"
                )
            if self.serving_pid() == self.pid:
                if self.plan is not None and PLAN_INSTALLED not in self.log():
                    raise DaemonError(f"the daemon runs without its fault plan:\n{self.log()}")
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

    def wait_log(self, text: str, timeout: float = 30.0, *, start: int = 0) -> int:
        """Wait until the log holds `text` at or after character `start`; returns where it ends.

        Raises DaemonError if the daemon exits without having logged it, or at the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process is not None and self.process.poll() is not None
            found = self.log().find(text, start)
            if found >= 0:
                return found + len(text)
            if exited:
                raise DaemonError(f"daemon exited without logging {text!r}:\n{self.log()}")
            if time.monotonic() >= deadline:
                raise DaemonError(f"{text!r} not logged within {timeout} s:\n{self.log()}")
            time.sleep(POLL_SECONDS)

    def hits(self) -> dict[str, int]:
        """How often the daemon hit each fault point so far (needs a plan)."""
        hits: dict[str, int] = self._hits_document().get("hits", {})
        return hits

    def injected(self) -> list[dict[str, Any]]:
        """The faults the daemon's plan injected so far: point, hit, action, at (monotonic)."""
        injected: list[dict[str, Any]] = self._hits_document().get("injected", [])
        return injected

    def wait_paused(self, point: str, timeout: float = 30.0, *, hit: int | None = None) -> int:
        """Wait until a daemon thread is paused at fault point `point` by a "pause" rule (at its
        `hit`-th hit of that point, if given); returns the hit number it is paused at."""
        chaos_dir = self._chaos_dir()
        deadline = time.monotonic() + timeout
        while True:
            paused = paused_hit(chaos_dir, point)
            if paused is not None and (hit is None or paused == hit):
                return paused
            if self.process is not None and self.process.poll() is not None:
                raise DaemonError(f"daemon exited before pausing at {point!r}:\n{self.log()}")
            if time.monotonic() >= deadline:
                raise DaemonError(
                    f"not paused at {point!r} within {timeout} s (hits {self.hits()}):\n{self.log()}"
                )
            time.sleep(POLL_SECONDS)

    def release(self, point: str, timeout: float = 10.0) -> None:
        """Let the threads paused at `point` go on; returns once the daemon took the release."""
        chaos_dir = self._chaos_dir()
        marker = release_file(chaos_dir, point)
        marker.touch()
        deadline = time.monotonic() + timeout
        while marker.exists():
            if self.process is not None and self.process.poll() is not None:
                marker.unlink(missing_ok=True)
                return
            if time.monotonic() >= deadline:
                raise DaemonError(f"release of {point!r} not taken within {timeout} s:\n{self.log()}")
            time.sleep(POLL_SECONDS)

    def _chaos_dir(self) -> Path:
        assert self.chaos_dir is not None, "this daemon was started without a fault plan"
        return self.chaos_dir

    def _hits_document(self) -> dict[str, Any]:
        return read_hits(self._chaos_dir())

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(
                f"daemon still running after {timeout} s; its threads:\n{threads_of(self.pid)}\n{self.log()}"
            ) from None

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def _served_by_another(self) -> bool:
        """Whether a live daemon other than ours serves the mountpoint (then its mount is left alone).
        Asked in a thread with a deadline: a mount that does not answer is not a live one."""
        answer: list[int | None] = []
        asking = threading.Thread(target=lambda: answer.append(self.serving_pid()), daemon=True)
        asking.start()
        asking.join(2.0)
        return bool(answer) and answer[0] is not None and answer[0] != self.pid

    def cleanup(self) -> None:
        """Kill the daemon (by PID, if still running) and lazily unmount; never raises."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        if mount_at(self.mountpoint) is not None and not self._served_by_another():
            subprocess.run(
                ["fusermount3", "-u", "-z", "--", str(self.mountpoint)],
                check=False,
                capture_output=True,
                timeout=10,
            )
