"""`musicfs mount` in a terminal, as a person runs it: the first scan's bar, the announcement of the
mount, Ctrl-C, Ctrl-C again while a read hangs on a frozen NAS, Ctrl-Z and `fg`, and its output sent
through a pipe (`| cat`) where Ctrl-C reaches the reader too.

Keys go in as the terminal sends them (the pty's VINTR and VSUSP characters: the kernel signals the
whole foreground process group); `fg` is typed into a real interactive bash with job control.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from pathlib import Path

import pytest

from chaos.mountinfo import mount_at
from chaos.oracle import demo_view
from tests.process.conftest import MountBindfs
from tests.terminal.conftest import BULK_TRACKS, OpenTerminal, mount_argv, stop_if_running, unmount_below
from tests.terminal.screen import COLUMNS, CONTROL, ESCAPE, Terminal, clean_environment, width

BAR = re.compile(  # a tqdm frame: percent, bar, count/total [elapsed<left, rate]
    r"scanning: +(\d+)%\|[^|\r\n]*\| (\d+)/(\d+) "
    r"\[(\d\d:\d\d)<(\d\d:\d\d|\?), +([\d.]+|\?)(?:file/s|s/file)\]"
)
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) +(.*)")
PROMPT = "[mfs]$ "


def announced(mountpoint: Path) -> str:
    """The line a mount shows once it serves: how to stop it."""
    return f"to stop: Ctrl-C, or musicfs unmount {mountpoint}"


def shell(terminal: OpenTerminal, scratch: Path) -> Terminal:
    """An interactive bash with job control, at its first prompt (no rc files, no bracketed paste)."""
    inputrc = scratch / "inputrc"
    inputrc.write_text("set enable-bracketed-paste off\n")
    env = clean_environment(PS1=PROMPT, INPUTRC=str(inputrc), HISTFILE="/dev/null")
    term = terminal(["bash", "--norc", "--noprofile", "-i"], env)
    term.expect(PROMPT)
    return term


def serving_pid(mountpoint: Path) -> int:
    return int(os.getxattr(mountpoint, "user.musicfs.pid"))


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def no_request_in_the_origin(pid: int, timeout: float = 10) -> None:
    """Wait until no thread of `pid` waits for the answer of a FUSE server. Freezing bindfs while it
    holds one of the daemon's requests would keep that thread in the kernel until bindfs answers
    (a request the server has taken is waited out uninterruptibly, even by an exiting process): the
    mount goes at once, but the process cannot end while the NAS is frozen. That limit is the
    kernel's; this test is about the reads that are stuck in the daemon."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = []
        for thread in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{thread}/wchan") as wchan:
                    if wchan.read() == "request_wait_answer":
                        waiting.append(thread)
            except (FileNotFoundError, ProcessLookupError):  # a thread that has just ended
                continue
        if not waiting:
            return
        assert time.monotonic() < deadline, f"threads {waiting} still wait for a FUSE server"
        time.sleep(0.02)


def assert_fits(term: Terminal, start: int = 0) -> None:
    """Nothing drawn from `start` on was wider than the screen (so nothing wrapped)."""
    wide = [piece for piece in term.segments(start) if width(piece) > COLUMNS]
    assert not wide, wide


def test_a_first_mount_draws_its_scan_in_place_then_one_summary_line(
    bulk: Path, scratch: Path, terminal: OpenTerminal
) -> None:
    mnt = scratch / "mnt"
    term = terminal(mount_argv(scratch, bulk))
    term.expect(announced(mnt), timeout=90)
    transcript = term.transcript
    frames = list(BAR.finditer(transcript))
    counts = [int(frame.group(2)) for frame in frames]
    assert len(set(counts)) >= 2, f"the bar was not redrawn as the scan went on: {counts}"
    assert counts == sorted(counts) and {int(frame.group(3)) for frame in frames} == {BULK_TRACKS}
    later = frames[1:]  # the first frame has no rate yet
    assert all(f.group(5) != "?" and f.group(6) != "?" for f in later), f"no time left or rate: {later}"
    drawn = transcript[frames[0].start() : frames[-1].end()]
    assert "\n" not in drawn, f"the bar moved down a row instead of redrawing in place: {drawn!r}"

    screen = term.screen()
    assert not [line for line in screen if "scanning:" in line], "the bar is still on the screen"
    summaries = [row for row, line in enumerate(screen) if "scan of " in line]
    assert len(summaries) == 1, screen
    summary = screen[summaries[0]]
    assert f"scan of {bulk}: {BULK_TRACKS} files, {BULK_TRACKS} new (" in summary, summary
    above = screen[summaries[0] - 1]
    assert above and above in transcript[: frames[0].start()], "the summary is not where the bar was"
    assert [line for line in screen if f"serving {BULK_TRACKS} tracks at {mnt}" in line], screen
    assert_fits(term)

    term.interrupt()
    assert term.wait_exit() == 0
    assert mount_at(mnt) is None


@pytest.mark.failure_mode("2.1")
def test_ctrl_c_stops_the_mount_with_one_line_per_step(
    demo: Path, scratch: Path, terminal: OpenTerminal
) -> None:
    mnt = scratch / "mnt"
    term = terminal(mount_argv(scratch, demo))
    term.expect(announced(mnt))
    term.expect(f"watching {demo} for changes")  # the last line of the start-up
    assert sorted(os.listdir(mnt)) == sorted({view.split("/")[0] for view in demo_view(demo)})
    term.interrupt()
    assert term.wait_exit() == 0
    assert mount_at(mnt) is None
    start = term.transcript.rindex("^C")  # the terminal's echo of the key
    lines = term.transcript[start + 2 :].replace("\r\n", "\n").splitlines()
    parsed = [LOG_LINE.fullmatch(line) for line in lines]
    assert all(parsed), f"not a log line of a step: {lines}"
    assert {p.group(1) for p in parsed if p} == {"INFO"}, lines
    steps = [re.sub(r"[\d.]+ s\b", "T s", p.group(2)) for p in parsed if p]
    assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
    assert steps[0] == "shutting down (SIGINT): 0 reads in flight" and steps[-1] == "stopped cleanly", steps
    assert_fits(term, start)


@pytest.mark.failure_mode("2.1")
def test_ctrl_c_reaches_the_whole_pipeline_and_the_pipe_gets_plain_lines(
    demo: Path, scratch: Path, terminal: OpenTerminal
) -> None:
    """`musicfs mount ... 2>&1 | cat`: the progress is plain lines, and Ctrl-C stops `cat` as well as
    MusicFS (the whole foreground group gets SIGINT); MusicFS still stops cleanly with 0."""
    mnt = scratch / "mnt"
    term = shell(terminal, scratch)
    command = " ".join(mount_argv(scratch, demo)) + " 2>&1 | cat"
    term.send_line(command)
    term.expect(f"{command}\r\n")
    start = len(term.transcript)
    term.expect(announced(mnt))  # its stdin is still the terminal, in the foreground: Ctrl-C works
    pid = serving_pid(mnt)
    try:
        through_the_pipe = term.transcript[start:].replace("\r\n", "\n")
        assert not ESCAPE.search(through_the_pipe) and not CONTROL.search(through_the_pipe), through_the_pipe
        assert re.search(r"scanning: (\d+) of \1 files", through_the_pipe), through_the_pipe
        term.interrupt()
        term.expect(PROMPT)
        term.send_line('echo "status: ${PIPESTATUS[*]}"')
        match = term.expect_pattern(r"status: (\d+) (\d+)")
        assert match.groups() == ("0", "130"), "MusicFS must exit 0; cat was interrupted"
        assert mount_at(mnt) is None
    finally:
        stop_if_running(pid)


@pytest.mark.failure_mode("2.1")
def test_a_second_ctrl_c_cuts_a_drain_stuck_on_a_frozen_origin(
    demo: Path, scratch: Path, terminal: OpenTerminal, bindfs: MountBindfs
) -> None:
    nas = bindfs(demo, scratch / "nas")
    config = scratch / "musicfs.toml"
    config.write_text(  # no cache: only the reader's read is in flight, no cache fill beside it
        "drain_timeout = 120\nread_timeout = 120\nhealth_interval = 600\n"
        f'[[origin]]\npath = "{nas.mountpoint}"\ncache = false\n'
    )
    mnt = scratch / "mnt"
    term = terminal(mount_argv(scratch, extra=["--config", str(config)]))
    term.expect(announced(mnt))
    term.expect("changes are found by polling")  # the start-up's last look at the origin is done
    no_request_in_the_origin(serving_pid(mnt))
    view = next(v for v in sorted(demo_view(demo)) if v.endswith(".flac"))
    fd = os.open(mnt / view, os.O_RDONLY)  # opened while the origin answers
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(os.pread(fd, 65536, 0))
        except OSError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    try:
        nas.freeze()
        reader.start()
        time.sleep(0.5)  # the read is on its way to the frozen origin; the log below confirms it
        term.interrupt()
        term.expect("shutting down (SIGINT): 1 reads in flight")
        time.sleep(1)
        assert term.child.isalive(), "the drain must wait for the stuck read (drain_timeout is 120 s)"
        started = time.monotonic()
        term.interrupt()
        term.expect("SIGINT again during shutdown: cutting the drain short")
        assert term.wait_exit(30) == 0
        took = time.monotonic() - started
        print(f"the second Ctrl-C ended the mount in {took:.2f} s (drain_timeout 120 s)")
        assert took < 30
        assert mount_at(mnt) is None, "a dead mount was left behind"
        reader.join(10)
        assert outcome and isinstance(outcome[0], OSError), outcome  # an error, never wrong bytes
    finally:
        nas.thaw()
        try:
            os.close(fd)
        except OSError as exc:  # the daemon is gone: closing reports the lost connection
            assert exc.errno == errno.ENOTCONN


@pytest.mark.failure_mode("2.1")
def test_ctrl_z_then_fg_keeps_the_mount_serving(demo: Path, scratch: Path, terminal: OpenTerminal) -> None:
    """Stopped for longer than the read deadline and the health interval, then continued: the listing
    that waited meanwhile completes, the mount serves the right bytes and still stops cleanly."""
    mnt = scratch / "mnt"
    config = scratch / "musicfs.toml"
    config.write_text("read_timeout = 1\nhealth_interval = 1\n")
    term = shell(terminal, scratch)
    term.send_line(" ".join(mount_argv(scratch, demo, extra=["--config", str(config)])))
    term.expect(announced(mnt))
    pid = serving_pid(mnt)
    start = len(term.transcript)
    try:
        term.suspend()
        term.expect("Stopped")
        term.expect(PROMPT)
        assert process_state(pid) == "T"
        waiting: list[list[str]] = []
        lister = threading.Thread(target=lambda: waiting.append(sorted(os.listdir(mnt))), daemon=True)
        lister.start()
        time.sleep(3)  # past read_timeout and health_interval while stopped
        assert not waiting, "a listing answered while the daemon was stopped"
        term.send_line("fg")
        lister.join(10)
        views = demo_view(demo)
        assert waiting == [sorted({view.split("/")[0] for view in views})]
        for view, origin_file in list(views.items())[:5]:
            try:
                assert (mnt / view).read_bytes() == origin_file.read_bytes(), view
            except OSError as exc:
                raise AssertionError(f"{view}: {exc}; the screen:\n{term.show()}") from None
        time.sleep(2)  # a health check runs after the continue; it must find the origin fine
        after = term.transcript[start:]
        assert "WARNING" not in after and "ERROR" not in after, term.show()
        term.interrupt()
        term.expect(PROMPT)
        term.send_line('echo "status: $?"')
        assert term.expect_pattern(r"status: (\d+)").group(1) == "0"
        assert mount_at(mnt) is None
    finally:
        stop_if_running(pid)


@pytest.mark.failure_mode("2.1")
def test_closing_the_terminal_stops_the_mount(demo: Path, scratch: Path, terminal: OpenTerminal) -> None:
    """The window closed: the kernel hangs the terminal up and sends SIGHUP. At a terminal that means
    "stop" (under systemd, with no terminal, SIGHUP still asks for a rescan): the mount must not go on
    orphaned, writing its log to a terminal that no longer exists."""
    mnt = scratch / "mnt"
    term = terminal(mount_argv(scratch, demo))
    term.expect(announced(mnt))
    term.expect(f"watching {demo} for changes")
    pid = serving_pid(mnt)
    os.close(term.child.child_fd)  # what closing the window does: the terminal side goes away
    term.child.closed = True
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and process_state(pid) != "Z":
        time.sleep(0.05)
    try:
        assert not os.path.exists(f"/proc/{pid}") or process_state(pid) == "Z", (
            "it goes on without a terminal"
        )
        assert mount_at(mnt) is None
    finally:
        stop_if_running(pid)
        unmount_below(scratch)
