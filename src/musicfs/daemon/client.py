"""The client side of `musicfs status|rescan|shutdown|metrics`: find the daemon, ask, show the answer.

Owns: finding the control socket (in `--state-dir`, or named by a live MusicFS mount: see
`musicfs.daemon.serving`), waiting for a daemon to be gone after `shutdown` (the blocking unmount users
ask for) and the readable form of a status answer.
Concurrency: short blocking calls in the CLI process.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from musicfs.daemon import control
from musicfs.daemon.serving import find_serving


def control_socket(mountpoint: Path | None, state_dir: Path | None) -> Path:
    """The control socket in `state_dir`, or the one of the MusicFS mounted at exactly `mountpoint`."""
    if state_dir is not None:
        return state_dir / control.SOCKET_NAME
    assert mountpoint is not None
    return find_serving(mountpoint).control_socket


def shutdown(socket: Path, timeout: float) -> str:
    """Ask the daemon to stop and return once its process has exited and its mount is gone."""
    answer = control.request(socket, "shutdown")
    pid = int(answer["pid"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return f"MusicFS (pid {pid}) stopped"
        time.sleep(0.05)
    raise control.ControlError(f"MusicFS (pid {pid}) is still running after {timeout:g} s")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def format_status(status: dict[str, Any]) -> str:
    """A status answer as a few aligned lines for a terminal."""
    lines = [
        f"MusicFS pid {status['pid']} at {status['mountpoint']}: {status['state']}",
        f"  tracks            {status['tracks']}",
        f"  requests          {status['requests']} ({sum(status['request_errors'].values())} failed)",
        f"  reads in flight   {status['reads_in_flight']}",
        f"  open files        {status['open_fds']}",
        f"  memory            {status['rss_bytes'] / 2**20:.1f} MiB",
        f"  rescans           {status['rescans']['completed']} done, {status['rescans']['failed']} failed",
        "origins:",
    ]
    for origin in status["origins"]:
        why = f" ({origin['why']})" if origin.get("why") else ""
        lines.append(f"  {origin['state']:<12} {origin['path']}{why}")
    lines.append("tasks:")
    width = max((len(task["name"]) for task in status["tasks"]), default=0)
    for task in status["tasks"]:
        error = ""
        if task["last_error"]:
            when = datetime.fromtimestamp(task["last_error_at"]).strftime("%H:%M:%S")
            error = f"  last error at {when}: {task['last_error']}"
        critical = "critical" if task["critical"] else "optional"
        lines.append(
            f"  {task['name']:<{width}} {task['state']:<11} {critical:<9} restarts {task['restarts']}{error}"
        )
    if status["fault_point_hits"]:
        hits = ", ".join(f"{name} {count}" for name, count in sorted(status["fault_point_hits"].items()))
        lines.append(f"fault points hit: {hits}")
    if status["recent_problems"]:
        lines.append("recent problems:")
        for problem in status["recent_problems"][-10:]:
            when = datetime.fromtimestamp(problem["time"]).strftime("%H:%M:%S")
            lines.append(f"  {when} {problem['level']:<7} {problem['message']}")
    return "\n".join(lines) + "\n"
