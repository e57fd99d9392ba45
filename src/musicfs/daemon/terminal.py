"""What the terminal a command writes to can show, and what the person at it can do.

Owns: the one answer to "may this stream be redrawn" (`redraws`: a terminal whose TERM is not `dumb`;
anything else, a pipe, a file, the journal, Emacs' shell, gets plain lines), the width to draw within
(`columns`), fitting text into a width (`shorten`: the middle gives way, so both ends of a path
stay), and how the person stops a mount (`stop_hint`: Ctrl-C only where the mount runs in the
foreground of the terminal they type into). MusicFS writes no colour anywhere, so NO_COLOR holds
everywhere by construction.
Concurrency: pure functions of the stream, the process and the environment; any thread.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path
from typing import TextIO

DUMB_TERMINALS = frozenset({"dumb", "unknown"})
DEFAULT_COLUMNS = 80
ELLIPSIS = "…"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def redraws(stream: TextIO) -> bool:
    """True when `stream` is a terminal that can redraw a line in place (a bar may live there)."""
    return is_terminal(stream) and os.environ.get("TERM", "") not in DUMB_TERMINALS


def columns(stream: TextIO) -> int:
    """The width to draw within: $COLUMNS if set, else the terminal's, else DEFAULT_COLUMNS."""
    try:
        return max(int(os.environ["COLUMNS"]), 1)
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_COLUMNS
    except (AttributeError, OSError, ValueError):
        return DEFAULT_COLUMNS


def cells(text: str) -> int:
    """How many columns `text` takes on a terminal (wide East Asian characters take two, combining
    marks none)."""
    return sum(_cell_width(char) for char in text)


def _cell_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def shorten(text: str, width: int) -> str:
    """`text` if it fits in `width` columns, else its beginning and end around an ellipsis."""
    if cells(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head_room = (width - 1) // 2
    tail_room = width - 1 - head_room
    head = _take(text, head_room)
    tail = _take(text[::-1], tail_room)[::-1]
    return head + ELLIPSIS + tail


def _take(text: str, width: int) -> str:
    taken, used = [], 0
    for char in text:
        used += _cell_width(char)
        if used > width:
            break
        taken.append(char)
    return "".join(taken)


def stop_hint(mountpoint: Path) -> str:
    """How the person who started a mount stops it: Ctrl-C too when it runs in their foreground."""
    unmount = f"musicfs unmount {mountpoint}"
    return f"to stop: Ctrl-C, or {unmount}" if _in_the_foreground() else f"to stop: {unmount}"


def _in_the_foreground() -> bool:
    """Is this process in the foreground process group of the terminal its stdin is (where Ctrl-C
    sends SIGINT)? False under systemd, with stdin from a file, or in a background job."""
    try:
        return sys.stdin is not None and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False
