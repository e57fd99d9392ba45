"""The other commands on an 80-column terminal: `status` (a table within the width, JSON with
`--json` or on a pipe), `scan` and `fsck` (a bar that goes away; plain lines on a pipe or a dumb
terminal; never colour), every user error (one line that fits, the exit code README documents)
and `--help` of every command (fits, names and explains each option README lists).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from musicfs.cache.store import ChunkStore, Watermarks
from musicfs.core.types import VersionKey
from musicfs.daemon.lock import InstanceLock
from tests import readme
from tests.process.conftest import Spawn, musicfs
from tests.process.test_user_errors import CONFIGS
from tests.terminal.conftest import BULK_TRACKS, OpenTerminal, musicfs_argv
from tests.terminal.screen import COLUMNS, CONTROL, ESCAPE, Terminal, clean_environment, width

COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def run(terminal: OpenTerminal, *args: str | Path, env: dict[str, str] | None = None) -> tuple[int, Terminal]:
    term = terminal(musicfs_argv(*args), env)
    return term.wait_exit(120), term


def assert_fits(term: Terminal) -> None:
    wide = [piece for piece in term.segments() if width(piece) > COLUMNS]
    assert not wide, f"wider than {COLUMNS} columns: {wide}"


def plain(text: str) -> str:
    """`text` as a pipe or a dumb terminal must get it: no escape sequence, no control character."""
    assert not ESCAPE.search(text), text
    assert not CONTROL.search(text), text
    return text


# --- status ----------------------------------------------------------------------------------------


@pytest.mark.allow_log(r"cannot read tags of .*a track whose tag")
def test_status_draws_its_table_within_the_terminal_width(
    demo: Path,
    scratch: Path,
    spawn: Spawn,
    terminal: OpenTerminal,
) -> None:
    deep = scratch / "a-folder-with-a-rather-long-name" / "shared by the whole family" / "collection"
    deep.mkdir(parents=True)
    os.rename(demo, deep / "Music")
    long_origin = deep / "Music"
    other = scratch / "other"
    other.mkdir()
    daemon = spawn([long_origin, other], mountpoint=scratch / "mnt", state_dir=scratch / "state")
    broken = long_origin / "Downloads" / "a track whose tags nobody could read at all.mp3"
    broken.write_bytes(b"not audio at all " * 64)
    assert musicfs("rescan", str(daemon.mountpoint)).returncode == 0  # its WARNING is a recent problem

    code, term = run(terminal, "status", daemon.mountpoint)
    assert code == 0
    assert_fits(term)
    screen = term.screen()
    assert screen[0].startswith(f"MusicFS pid {daemon.pid} at {daemon.mountpoint}: "), screen
    rows = [line for line in screen if "…" in line and line.rstrip().endswith("/Music")]
    assert rows, f"the long origin is not shown by its two ends: {screen}"
    assert [line for line in screen if line.split()[-1:] == [str(other)]], screen
    assert [line for line in screen if "cannot read tags of" in line], screen

    code, term = run(terminal, "status", "--json", daemon.mountpoint)
    assert code == 0
    shown = json.loads(plain(term.transcript.replace("\r\n", "\n")))
    assert [o["path"] for o in shown["origins"]] == [str(long_origin), str(other)]
    piped = musicfs("status", str(daemon.mountpoint))
    assert piped.returncode == 0
    assert [o["path"] for o in json.loads(plain(piped.stdout))["origins"]] == [str(long_origin), str(other)]


# --- scan and fsck bars ----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["plain", "NO_COLOR"])
def test_scan_draws_a_bar_that_gives_way_to_its_summary(
    bulk: Path, scratch: Path, terminal: OpenTerminal, setting: str
) -> None:
    env = clean_environment(**({"NO_COLOR": "1"} if setting == "NO_COLOR" else {}))
    code, term = run(terminal, "scan", "--origin", bulk, "--state-dir", scratch / "state", env=env)
    assert code == 0
    frames = re.findall(rf"scanning: +\d+%\|[^|\r\n]*\| (\d+)/{BULK_TRACKS} \[", term.transcript)
    assert frames, term.transcript
    assert not COLOUR.search(term.transcript), "MusicFS never colours its output"
    screen = term.screen()
    assert not [line for line in screen if "scanning:" in line], screen
    assert f"{bulk}: {BULK_TRACKS} files, {BULK_TRACKS} new (" in screen[-1], screen
    assert_fits(term)


def test_a_dumb_terminal_gets_plain_progress_lines(bulk: Path, scratch: Path, terminal: OpenTerminal) -> None:
    env = clean_environment(TERM="dumb")
    code, term = run(terminal, "scan", "--origin", bulk, "--state-dir", scratch / "state", env=env)
    assert code == 0
    shown = plain(term.transcript.replace("\r\n", "\n"))
    assert f"scanning: {BULK_TRACKS} of {BULK_TRACKS} files" in shown, shown
    assert "%|" not in shown


def _cache_with_chunks(folder: Path, count: int) -> None:
    store = ChunkStore(folder, watermarks=Watermarks(1 << 30))
    try:
        for number in range(count):
            version = VersionKey(1, f"track{number}.flac".encode(), 4096, 1_000, 2_000)
            assert store.put(version, 0, os.urandom(4096))
    finally:
        store.close()


def test_fsck_draws_a_bar_over_the_chunks_then_its_report(
    bulk: Path, scratch: Path, terminal: OpenTerminal
) -> None:
    state, cache = scratch / "state", scratch / "cache"
    scanned = musicfs("scan", "--origin", str(bulk), "--state-dir", str(state), "--log-level", "ERROR")
    assert scanned.returncode == 0, scanned.stderr
    _cache_with_chunks(cache, 300)
    args = ("fsck", "--state-dir", state, "--cache-dir", cache, "--full")
    code, term = run(terminal, *args)
    assert code == 0
    assert re.search(r"checking cache: +\d+%\|[^|\r\n]*\| \d+/300 \[", term.transcript), term.transcript
    screen = term.screen()
    assert not [line for line in screen if "checking cache" in line], screen
    assert [line for line in screen if "300 chunks, 300 verified, nothing to repair" in line], screen
    assert screen[-1] == "no problems found", screen
    assert_fits(term)

    piped = musicfs(*(str(a) for a in args))
    assert piped.returncode == 0
    plain(piped.stdout + piped.stderr)
    assert "300 chunks, 300 verified" in piped.stdout


# --- user errors -----------------------------------------------------------------------------------
# Each case builds its command in a fresh short folder S holding `lib` (an empty origin) and `afile`
# (a file where a folder is expected); what it must undo goes on the ExitStack.

ErrorCase = Callable[[Path, ExitStack], list[str]]


def _config(scratch: Path, content: bytes) -> Path:
    config = scratch / "musicfs.toml"
    config.write_bytes(content)
    return config


def _mount(scratch: Path, *args: str | Path, state: Path | None = None) -> list[str]:
    (scratch / "mnt").mkdir(exist_ok=True)
    state = state or scratch / "state"
    return [str(a) for a in ("mount", scratch / "mnt", "--state-dir", state, *args)]


def _config_case(content: bytes) -> ErrorCase:
    return lambda s, _: _mount(s, "--origin", s / "lib", "--config", _config(s, content))


def _full_disk(scratch: Path, stack: ExitStack) -> list[str]:
    disk = scratch / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "musicfs-test", str(disk)], check=True)
    stack.callback(subprocess.run, ["umount", "-l", str(disk)], check=False)
    with open(disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError, match="No space"):
        while True:
            filler.write(b"\0" * 4096)
    return _mount(scratch, "--origin", scratch / "lib", state=disk)


def _locked(scratch: Path, stack: ExitStack) -> list[str]:
    (scratch / "state").mkdir()
    lock = InstanceLock(scratch / "state")
    lock.acquire()  # held by this test while the command runs: another MusicFS, to it
    stack.callback(lock.release)
    return _mount(scratch, "--origin", scratch / "lib")


def _inner(scratch: Path, _: ExitStack) -> list[str]:
    (scratch / "mnt" / "inner").mkdir(parents=True)
    return _mount(scratch, "--origin", scratch / "mnt" / "inner")


USER_ERRORS: dict[str, tuple[ErrorCase, int, str]] = {
    **{f"config-{case}": (_config_case(content), 2, says) for case, (content, says) in CONFIGS.items()},
    "config-unknown-key": (_config_case(b"colour = 'red'\n"), 2, "unknown key"),
    "bad-template": (lambda s, _: _mount(s, "--origin", s / "lib", "--template", "{nope}"), 2, "template"),
    "no-origin": (lambda s, _: _mount(s), 2, "no origin"),
    "no-mountpoint": (lambda s, _: ["mount", "--origin", str(s / "lib")], 2, "no mountpoint"),
    "unknown-option": (lambda s, _: _mount(s, "--origin", s / "lib", "--bogus"), 2, "--bogus"),
    "bad-number": (lambda s, _: _mount(s, "--origin", s / "lib", "--read-timeout", "soon"), 2, "soon"),
    "bad-log-level": (lambda s, _: ["scan", "--origin", str(s / "lib"), "--log-level", "loud"], 2, "'loud'"),
    "status-without-target": (lambda s, _: ["status"], 2, "MOUNTPOINT or --state-dir"),
    "missing-origin": (lambda s, _: _mount(s, "--origin", s / "nope"), 3, f"{os.sep}nope"),
    "origin-inside-mountpoint": (_inner, 3, "inside the mountpoint"),
    "missing-mountpoint": (
        lambda s, _: ["mount", str(s / "nomnt"), "--origin", str(s / "lib"), "--state-dir", str(s / "state")],
        4,
        "does not exist",
    ),
    "mountpoint-in-proc": (
        lambda s, _: ["mount", "/proc/self/fd", "--origin", str(s / "lib"), "--state-dir", str(s / "state")],
        4,
        "/proc",
    ),
    "status-of-a-folder": (lambda s, _: ["status", str(s / "lib")], 4, "lib"),
    "state-dir-is-a-file": (
        lambda s, _: _mount(s, "--origin", s / "lib", state=s / "afile"),
        5,
        "state dir",
    ),
    "cache-dir-inside-origin": (
        lambda s, _: _mount(s, "--origin", s / "lib", "--cache-dir", s / "lib" / ".cache"),
        5,
        "inside",
    ),
    "fsck-of-a-typo": (
        lambda s, _: ["fsck", "--state-dir", str(s / "stat"), "--cache-dir", str(s / "cache")],
        5,
        "does not exist",
    ),
    "full-state-disk": (_full_disk, 5, "no space left"),
    "already-running": (_locked, 6, "is used by MusicFS pid"),
    "demo-under-a-file": (lambda s, _: ["demo", str(s / "afile" / "demo")], 1, "cannot write"),
}


@pytest.mark.failure_mode("user-errors")
@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_a_user_error_is_one_line_that_fits_with_its_documented_code(
    scratch: Path, terminal: OpenTerminal, case: str
) -> None:
    make, code, says = USER_ERRORS[case]
    (scratch / "lib").mkdir()
    (scratch / "afile").write_text("a file where a folder is expected\n")
    with ExitStack() as stack:
        exit_code, term = run(terminal, *make(scratch, stack))
    screen = [line for line in term.screen() if line]
    assert len(screen) == 1 and screen[0].startswith("musicfs: error: "), screen
    assert says in screen[0], (says, screen)
    assert_fits(term)
    assert exit_code == code, (exit_code, screen)
    assert code in readme.exit_codes(), f"exit code {code} is not in README's table"


# --- help --------------------------------------------------------------------------------------------


def _options_without_text(help_text: str) -> list[str]:
    """The options the help lists with no explanation beside or below them."""
    section = help_text.split("options:\n", 1)[1]
    entries: list[str] = []
    for line in section.splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif line.startswith("   ") and entries:
            entries[-1] += line
    return [entry.split()[0] for entry in entries if len(re.split(r"\s{2,}", entry.strip())) < 2]


@pytest.mark.parametrize("command", sorted(readme.usage()))
def test_help_of_every_command_fits_and_explains_each_option(terminal: OpenTerminal, command: str) -> None:
    code, term = run(terminal, command, "--help")
    assert code == 0
    assert_fits(term)
    shown = "\n".join(term.screen())
    named = set(re.findall(r"--[a-z][a-z-]*", shown))
    assert readme.usage()[command] <= named, f"README names {readme.usage()[command] - named}, help does not"
    assert not _options_without_text(shown), _options_without_text(shown)


def test_help_of_musicfs_lists_every_command_and_exit_code(terminal: OpenTerminal) -> None:
    code, term = run(terminal, "--help")
    assert code == 0
    assert_fits(term)
    shown = "\n".join(term.screen())
    for command in readme.usage():
        assert re.search(rf"^\s+{command}\s", shown, re.MULTILINE), command
    for exit_code in readme.exit_codes():
        assert re.search(rf"^\s+{exit_code}\s", shown, re.MULTILINE), f"exit code {exit_code}"
