"""The `musicfs` command: arguments -> Config -> daemon, and every error -> one line and an exit code.

Owns: the command-line interface (mount, unmount, scan, tree, demo, fsck and the control commands),
its help (every option explained; the exit codes of `musicfs.core.errors.ExitCode` at the end of
`musicfs --help`) and the one rule for what goes wrong: a line `musicfs: error: ...` on stderr and
the exit code of its kind, for bad arguments too (argparse's own usage errors included).
Concurrency: main thread only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from musicfs.core.config import LOG_LEVELS, Config, build_config, read_config_file
from musicfs.core.errors import ConfigError, ExitCode, StateDirError, UserError
from musicfs.daemon import terminal
from musicfs.daemon.crash import install_crash_hooks
from musicfs.daemon.logsetup import setup_logging
from musicfs.tree.template import FIELDS

if TYPE_CHECKING:
    from musicfs.library import OriginWrapper

log = logging.getLogger("musicfs")

LOG_LEVEL_HELP = "how much to log: DEBUG, INFO (default), WARNING or ERROR"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (and exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        line = f"musicfs: error: {message.removeprefix('argument ')}"
        hint = "; see --help"
        fits = terminal.cells(line + hint) <= terminal.columns(sys.stderr)
        print(line + hint if fits else line, file=sys.stderr)
        sys.exit(ExitCode.USAGE)


def help_epilog() -> str:
    """The exit codes, as the end of `musicfs --help` shows them."""
    return "exit codes:\n" + "\n".join(f"  {int(code):<4} {code.meaning}" for code in ExitCode)


class _Version(argparse.Action):
    """--version: the lines of `fs.capabilities.describe`, asked only when the option is given."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from musicfs.fs import listings  # only here: every other command starts without pyfuse3
        from musicfs.fs.capabilities import describe

        try:
            chosen = listings.choose()
        except ConfigError as exc:
            parser.exit(ConfigError.exit_code, f"musicfs: error: {exc}\n")
        print(describe(chosen))
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="musicfs",
        description="A read-only FUSE view of a music collection, organised by its tags.",
        epilog=help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_Version, help="show the version, the FUSE stack and its fast paths, and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    mount = commands.add_parser("mount", help="mount the library and serve it until stopped")
    mount.add_argument(
        "mountpoint", type=Path, nargs="?", help="where to mount (or 'mountpoint' in the config)"
    )
    _library_arguments(mount)
    mount.add_argument(
        "--allow-other", action="store_true", default=None, help="let other users read the mount"
    )
    mount.add_argument(
        "--auto-unmount",
        action="store_true",
        default=None,
        help="unmount even if the daemon is killed (an empty folder instead of a dead mount)",
    )
    mount.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where origins with caching on keep what was read (default: $CACHE_DIRECTORY, else "
        "$XDG_CACHE_HOME/musicfs or ~/.cache/musicfs)",
    )
    mount.add_argument(
        "--read-timeout",
        type=float,
        metavar="S",
        help="seconds before a hung origin read gives EIO (default 10)",
    )

    scan = commands.add_parser("scan", help="build or refresh the index without mounting")
    _library_arguments(scan)

    check = commands.add_parser("fsck", help="check the index and the cache of a stopped MusicFS")
    check.add_argument("--config", type=Path, metavar="FILE", help="a TOML config file")
    check.add_argument("--state-dir", metavar="DIR", help="where the index and lock live")
    check.add_argument("--cache-dir", metavar="DIR", help="the cache to check")
    _log_level(check)
    check.add_argument("--full", action="store_true", help="verify everything, not a sample")
    check.add_argument("--repair", action="store_true", help="set a damaged index aside to be rebuilt")

    tree = commands.add_parser("tree", help="print the layout the mount would show, without mounting")
    _library_arguments(tree, with_state=False)
    tree.add_argument(
        "--albums",
        action="store_true",
        help="one line per album folder: its tracks, the year and release chosen, where its cover comes from",
    )

    unmount = commands.add_parser(
        "unmount", help="stop the MusicFS serving MOUNTPOINT, or clean a dead mount"
    )
    unmount.add_argument("mountpoint", type=Path, help="where it is mounted")
    unmount.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for it (default 30)"
    )
    _log_level(unmount)

    for name, text in (
        ("status", "show what a running MusicFS is doing (a table on a terminal, JSON otherwise)"),
        ("rescan", "rescan the origins of a running MusicFS and wait for it"),
        ("shutdown", "stop a running MusicFS; returns once it has exited and unmounted"),
        ("metrics", "print a running MusicFS's metrics in Prometheus text format"),
    ):
        control_parser = commands.add_parser(name, help=text)
        control_parser.add_argument("mountpoint", type=Path, nargs="?", help="the mountpoint it serves")
        control_parser.add_argument("--state-dir", type=Path, metavar="DIR", help="or its state directory")
        _log_level(control_parser)
        if name == "status":
            control_parser.add_argument("--json", action="store_true", help="JSON even on a terminal")
        if name == "shutdown":
            control_parser.add_argument(
                "--timeout", type=float, default=60.0, metavar="S", help="seconds to wait for it (default 60)"
            )

    demo = commands.add_parser("demo", help="write a small demo library of real, tagged audio files")
    demo.add_argument("destination", type=Path, help="the folder to write it to")
    demo.add_argument("--seed", type=int, default=0, help="another seed, other years and genres")
    _log_level(demo)
    return parser


def _log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", type=_level, default=None, metavar="L", help=LOG_LEVEL_HELP)


def _level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"'{text}' is not {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
    return text.upper()


def _library_arguments(parser: argparse.ArgumentParser, *, with_state: bool = True) -> None:
    parser.add_argument(
        "--origin",
        action="append",
        metavar="PATH",
        help="a folder of music (repeat for several; the first is preferred)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML config file")
    parser.add_argument(
        "--template",
        metavar="T",
        help=f"the path template; fields: {', '.join(sorted(FIELDS))} (README: 'The path template')",
    )
    if with_state:
        parser.add_argument("--state-dir", metavar="DIR", help="where the index and lock live")
    _log_level(parser)


def _config(args: argparse.Namespace) -> Config:
    file_values = read_config_file(args.config) if args.config else {}
    overrides: dict[str, Any] = {
        "origin": args.origin,
        "template": args.template,
        "state_dir": getattr(args, "state_dir", None),
        "cache_dir": getattr(args, "cache_dir", None),
        "log_level": args.log_level,
        "mountpoint": str(args.mountpoint) if getattr(args, "mountpoint", None) else None,
        "allow_other": getattr(args, "allow_other", None),
        "auto_unmount": getattr(args, "auto_unmount", None),
        "read_timeout": getattr(args, "read_timeout", None),
    }
    return build_config(file_values, overrides)


def _run(args: argparse.Namespace, wrap_origin: OriginWrapper | None = None) -> int:
    if args.command == "mount":
        from musicfs.daemon.signals import StopSignals

        signals = StopSignals.install()  # first of all: every phase handles every signal (7.5)
    if args.command == "demo":
        return _demo(args.destination, args.seed)
    if args.command in ("status", "rescan", "shutdown", "metrics"):
        return _control(args)
    if args.command == "fsck":
        return _fsck(args)
    if args.command == "unmount":
        from musicfs.daemon.unmount import unmount

        print(unmount(args.mountpoint, args.timeout))
        return 0
    config = _config(args)
    setup_logging(config.log_level)
    from musicfs.daemon import app

    if args.command == "mount":
        if config.mountpoint is None:
            raise ConfigError("no mountpoint: give MOUNTPOINT, or 'mountpoint' in the config")
        with _full_disk_is_a_state_dir_error(config.state_dir):
            app.mount(config, signals, wrap_origin or app.as_built)
    elif args.command == "scan":
        with _full_disk_is_a_state_dir_error(config.state_dir), app.open_instance(config) as library:
            for report in app.scan(library):
                print(report.summary())
    elif args.command == "tree":
        _print_tree(config, albums=args.albums)
    return 0


def _demo(destination: Path, seed: int) -> int:
    from musicfs.demo import generate_library

    try:
        demo = generate_library(destination, seed=seed)
    except OSError as exc:
        raise UserError(f"cannot write {destination}: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # numpy or soundfile missing
        raise UserError(str(exc)) from None
    print(f"wrote a demo library of {len(demo.tracks)} tracks to {demo.root}")
    return 0


@contextmanager
def _full_disk_is_a_state_dir_error(state_dir: Path) -> Iterator[None]:
    """No space for the lock or the index is one line and exit 5 (a full cache disk never gets here:
    the cache turns to pass-through)."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if not _disk_full(exc, state_dir):
            raise
        raise StateDirError(f"no space left on the disk of state dir {state_dir}") from None


def _disk_full(exc: OSError | sqlite3.Error, state_dir: Path) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code == sqlite3.SQLITE_FULL:
        return True
    try:  # SQLite reports a failed allocation of its -shm file as an I/O error
        return code == sqlite3.SQLITE_IOERR and os.statvfs(state_dir).f_bavail == 0
    except OSError:
        return False


def _fsck(args: argparse.Namespace) -> int:
    from musicfs.core.config import folders
    from musicfs.daemon.fsck import fsck
    from musicfs.daemon.progress import Progress

    values = dict(read_config_file(args.config) if args.config else {})
    values.update({k: v for k, v in (("state_dir", args.state_dir), ("cache_dir", args.cache_dir)) if v})
    state_dir, cache_dir = folders(values)
    with (
        _full_disk_is_a_state_dir_error(state_dir),
        Progress(sys.stderr, "checking cache", "chunk") as progress,
    ):
        checked = fsck(state_dir, cache_dir, full=args.full, repair=args.repair, progress=progress)
    print("\n".join(checked.lines))
    print("no problems found" if checked.problems == 0 else f"{checked.problems} problem(s) found")
    return 1 if checked.problems else 0


def _control(args: argparse.Namespace) -> int:
    import json

    from musicfs.daemon import client, control

    if (args.mountpoint is None) == (args.state_dir is None):
        raise ConfigError(f"musicfs {args.command} needs a MOUNTPOINT or --state-dir (one of them)")
    socket = client.control_socket(args.mountpoint, args.state_dir)
    if args.command == "shutdown":
        print(client.shutdown(socket, args.timeout))
    elif args.command == "rescan":
        answer = control.request(socket, "rescan", timeout=3600.0, wait=True)
        outcome = "failed (see the daemon's log)" if answer["failed"] else "done"
        print(f"rescan {outcome}: {answer['tracks']} tracks")
        return 1 if answer["failed"] else 0
    elif args.command == "metrics":
        sys.stdout.write(control.request(socket, "metrics")["text"])
    else:
        status = control.request(socket, "status")
        status.pop("ok", None)
        if sys.stdout.isatty() and not args.json:
            sys.stdout.write(client.format_status(status, terminal.columns(sys.stdout)))
        else:
            print(json.dumps(status, indent=2))
    return 0


def _print_tree(config: Config, *, albums: bool) -> None:
    from dataclasses import replace

    from musicfs.daemon import app
    from musicfs.tree.albums import album_lines

    with (
        tempfile.TemporaryDirectory(prefix="musicfs-tree-") as scratch,
        _full_disk_is_a_state_dir_error(Path(scratch)),
        app.open_instance(replace(config, state_dir=Path(scratch))) as library,
    ):
        app.scan(library)
        if albums:
            roots = {origin.origin_id: origin.root for origin in library.origins}
            sys.stdout.writelines(line + "\n" for line in album_lines(library.tree, library.albums(), roots))
            return
        files, _ = library.index.view(library.priority)
        for path in sorted(f.viewpath for f in files):
            sys.stdout.write(os.fsdecode(path) + "\n")


def main(argv: Sequence[str] | None = None, *, wrap_origin: OriginWrapper | None = None) -> int:
    """Entry point of the `musicfs` console script; returns the exit code. `wrap_origin` is for the
    chaos launcher only (`chaos.launch`): how the daemon's origins are built."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    install_crash_hooks()
    try:
        return _outcome(args, wrap_origin)
    finally:
        _settle(sys.stderr)


def _outcome(args: argparse.Namespace, wrap_origin: OriginWrapper | None) -> int:
    try:
        code: int = _run(args, wrap_origin)
        sys.stdout.flush()  # a closed stdout fails here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # every other pipe and socket is wrapped: this is stdout, read by `head`
        _settle(sys.stdout)
        return ExitCode.STDOUT_CLOSED
    except UserError as exc:
        _say(f"musicfs: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("musicfs: interrupted")
        return ExitCode.INTERRUPTED
    except Exception:
        log.exception("internal error (a bug in MusicFS; please report it with this traceback)")
        return ExitCode.INTERNAL


def _say(line: str) -> None:
    """One line on stderr; a reader that is gone (`| cat` interrupted too) does not change the outcome."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


def _settle(stream: TextIO) -> None:
    """Flush `stream`; if its reader is gone, point it at /dev/null so that the interpreter's own last
    flush cannot fail and turn the exit code into 120 (seen: `musicfs mount ... | cat`, Ctrl-C)."""
    try:
        stream.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


if __name__ == "__main__":
    sys.exit(main())
