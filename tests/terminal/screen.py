"""A program in a pseudo-terminal of a fixed size, and the screen a person would see there.

`Terminal` spawns a command with pexpect in a pty of `COLUMNS`x`ROWS` (the command is the session
leader and the pty's foreground process group, as in a terminal window), keys go in as the terminal
sends them (`interrupt` is the pty's VINTR character, so the kernel signals the whole foreground
group), and everything it prints is kept raw (`transcript`) and rendered by a VT100 emulator
(pyte) into the lines left on the screen once redraws and erasures are done (`screen`).
`segments` cuts the raw output where the terminal starts a row again (carriage return, line feed),
so the width of what was ever drawn on one row can be measured, redrawn bar frames included.
Every terminal is closed by `close`: the process it started is killed by its PID if still running.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
from collections.abc import Mapping, Sequence

import pexpect
import pyte
from wcwidth import wcswidth

COLUMNS = 80
ROWS = 24
ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")  # CSI sequences and two-byte escapes
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # every control character but \t and \n
# What the terminal itself leaves in the output: the echo of Ctrl-C / Ctrl-Z, and its line ends.
TERMINAL_ECHO = ("^C", "^Z")


def clean_environment(**overrides: str) -> dict[str, str]:
    """The environment of a person's terminal: a known TERM and locale, none of the variables that
    change how MusicFS writes (colour, size, systemd), then `overrides`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "JOURNAL_STREAM", "NOTIFY_SOCKET"}
        and not name.startswith(("WATCHDOG_", "LC_"))
    }
    env.update(TERM="xterm", LANG="C.UTF-8")
    env.update(overrides)
    return env


def width(text: str) -> int:
    """How many columns `text` takes on a terminal (escape sequences take none)."""
    shown = ESCAPE.sub("", text)
    columns = wcswidth(shown)
    return columns if columns >= 0 else len(shown)


class Terminal:
    """One command running in a pseudo-terminal of COLUMNS x ROWS."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None) -> None:
        self._output = io.StringIO()
        self.child = pexpect.spawn(
            argv[0],
            list(argv[1:]),
            env=dict(env),
            cwd=cwd,
            dimensions=(ROWS, COLUMNS),
            encoding="utf-8",
            codec_errors="replace",
            timeout=30,
        )
        self.child.logfile_read = self._output
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        pid: int = self.child.pid
        return pid

    def expect(self, text: str, timeout: float = 30) -> None:
        """Wait until the output shows `text` (raw, exactly); fail with what it showed so far."""
        try:
            self.child.expect_exact(text, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            what = "timed out" if isinstance(exc, pexpect.TIMEOUT) else "output ended"
            raise AssertionError(f"{what} waiting for {text!r}; the screen:\n{self.show()}") from None

    def expect_pattern(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until the output matches the regular expression `pattern`; returns the match."""
        try:
            self.child.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(f"no {pattern!r} within {timeout} s; the screen:\n{self.show()}") from None
        match: re.Match[str] = self.child.match
        return match

    def send_line(self, text: str) -> None:
        self.child.sendline(text)

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal sends it: the pty's VINTR character (SIGINT to the foreground group)."""
        self.child.sendintr()

    def suspend(self) -> None:
        """Ctrl-Z: the pty's VSUSP character (SIGTSTP to the foreground group)."""
        self.child.sendcontrol("z")

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the command to end (its output drained); returns its exit code."""
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT:
            raise AssertionError(f"still running after {timeout} s; the screen:\n{self.show()}") from None
        self.child.close()
        assert self.child.signalstatus is None, f"killed by signal {self.child.signalstatus}:\n{self.show()}"
        self.exit_code = self.child.exitstatus
        assert self.exit_code is not None
        return self.exit_code

    @property
    def transcript(self) -> str:
        """Everything the command wrote to the terminal so far, escape sequences included."""
        return self._output.getvalue()

    def segments(self, start: int = 0) -> list[str]:
        """The raw output from `start` cut at every carriage return and line feed: each piece is what
        was drawn on one row in one go (a bar frame, a log line), escape sequences included."""
        return [piece for piece in re.split(r"[\r\n]", self.transcript[start:]) if piece]

    def screen(self) -> list[str]:
        """The lines a person sees once every redraw is done (trailing blank lines dropped). Rendered
        on a screen tall enough to keep every line: the lines scrolled away are still counted."""
        rows = max(ROWS, self.transcript.count("\n") + 2)
        screen = pyte.Screen(COLUMNS, rows)
        pyte.Stream(screen).feed(self.transcript)
        lines = [line.rstrip() for line in screen.display]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def show(self) -> str:
        return "\n".join(self.screen())

    def close(self) -> None:
        """Kill the command by its PID if it still runs; never raises."""
        if self.child.isalive():
            with contextlib.suppress(OSError):
                os.kill(self.child.pid, signal.SIGKILL)
            with contextlib.suppress(pexpect.ExceptionPexpect, OSError):
                self.child.close(force=True)
