"""The client side of `musicfs status|rescan|shutdown|metrics`: find the daemon, ask, show the answer.

Owns: finding the control socket (in `--state-dir`, or named by a live MusicFS mount: see
`musicfs.daemon.serving`), waiting for a daemon to be gone after `shutdown` (the blocking unmount users
ask for) and the readable form of a status answer, drawn within the terminal's width.
Concurrency: short blocking calls in the CLI process.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from musicfs.daemon import control
from musicfs.daemon.serving import find_serving
from musicfs.daemon.terminal import DEFAULT_COLUMNS, cells, shorten

MIN_SHOWN = 24  # the fewest columns a path or message keeps before the text after it gives way
MIN_NAME = 16  # the narrowest task-name column of the table; narrower terminals get two lines a task


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


def format_status(status: dict[str, Any], width: int = DEFAULT_COLUMNS) -> str:
    """A status answer as aligned lines for a terminal `width` columns wide: no line is wider (a long
    path or message loses its middle, so both its ends stay readable)."""
    lines = [
        fit(f"MusicFS pid {status['pid']} at ", status["mountpoint"], f": {status['state']}", width),
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
        lines.append(fit(f"  {origin['state']:<12} ", origin["path"], why, width))
    lines.append("tasks:")
    columns = " running     optional  restarts 0"  # the widest columns after a name, as a measure
    longest = max((cells(task["name"]) for task in status["tasks"]), default=0)
    name_width = min(longest, width - 2 - len(columns))
    for task in status["tasks"]:
        critical = "critical" if task["critical"] else "optional"
        after = f"{task['state']:<11} {critical:<9} restarts {task['restarts']}"
        if name_width < MIN_NAME:  # too narrow for a table: the name on a line of its own
            lines += [shorten(f"  {task['name']}", width), shorten(f"    {after}", width)]
        else:
            name = shorten(task["name"], name_width)
            lines.append(shorten(f"  {name}{' ' * (name_width - cells(name))} {after}", width))
        if task["last_error"]:
            when = datetime.fromtimestamp(task["last_error_at"]).strftime("%H:%M:%S")
            lines.append(fit(f"    last error at {when}: ", task["last_error"], "", width))
    if status["fault_point_hits"]:
        hits = ", ".join(f"{name} {count}" for name, count in sorted(status["fault_point_hits"].items()))
        lines.append(fit("fault points hit: ", hits, "", width))
    if status["recent_problems"]:
        lines.append("recent problems:")
        for problem in status["recent_problems"][-10:]:
            when = datetime.fromtimestamp(problem["time"]).strftime("%H:%M:%S")
            lines.append(fit(f"  {when} {problem['level']:<7} ", problem["message"], "", width))
    return "\n".join(lines) + "\n"


def fit(prefix: str, text: str, suffix: str, width: int) -> str:
    """`prefix + text + suffix` within `width` columns: `text` gives way first (down to MIN_SHOWN
    columns), then `text` and the suffix together, then the prefix."""
    room = width - cells(prefix) - cells(suffix)
    if room >= min(cells(text), MIN_SHOWN):
        return prefix + shorten(text, room) + suffix
    if width - cells(prefix) >= min(cells(text + suffix), MIN_SHOWN // 3):
        return prefix + shorten(text + suffix, width - cells(prefix))
    return shorten(prefix + text + suffix, width)
