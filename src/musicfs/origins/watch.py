"""Live-update detection for local origins: watching a folder tree with inotify.

Owns: `InotifyWatcher`, which turns the kernel's event stream into debounced `ChangeBatch`es of
relative paths. Whether an origin can be watched at all (or must be polled) is
`musicfs.origins.fstype.needs_polling`; the system calls are `musicfs.origins.inotify`.

What a watcher reports matches what the scanner (`musicfs.origins.local`) walks: hidden entries (names
starting with '.') are ignored, symlinked folders are followed only when they lead to a folder inside
the origin (a symlink to `/` planted in an origin must not make the daemon watch the whole system), and
a folder met twice (a symlink loop, or one folder reachable by two paths) is watched once, under the
path met first. A folder that appears
(created, or moved in) gets its watch at once, and everything already inside it is reported too, since
files may have been copied in before the watch existed.

Concurrency: one trio task owns a watcher; it is not thread-safe. `close()` may be called from another
task of the same trio run (a task blocked in `next_batch` then gets `trio.ClosedResourceError`).
Blocking calls: the constructor walks the whole tree (run it in a worker thread for a big library,
then hand the watcher to its task), and a folder that appears is listed on the spot, inside
`next_batch`. Both are plain local-disk calls: inotify is only used where `needs_polling` says False.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

import trio

from musicfs.origins.inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    WATCH_MASK,
    InotifyEvent,
    add_watch,
    inotify_init,
    parse_events,
    rm_watch,
)

log = logging.getLogger(__name__)

_ROOT_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
_APPEARED = IN_CREATE | IN_MOVED_TO
_VANISHED = IN_DELETE | IN_MOVED_FROM
_READ_SIZE = 64 * 1024  # many events per read; always more than one event with a 255-byte name
_MAX_READS = 16  # per read_events: 1 MiB, more than the default queue of 16384 events holds
_LIMIT_ERRNOS = (errno.ENOSPC, errno.ENOMEM)  # ENOSPC: fs.inotify.max_user_watches reached


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """What changed in a watched tree since the previous batch.

    Attributes:
        paths: relative paths (bytes) of the files and folders created, written, retagged, renamed
            (both names) or deleted. A folder that appeared brings every entry inside it.
        overflow: events were lost (the kernel queue overflowed): rescan the whole origin.
        root_gone: the watched folder itself was deleted, moved or unmounted; the watcher watches
            nothing any more: close it (and make a new one once the origin is back).
        incomplete: some folder could not be watched (the inotify watch limit): changes there go
            unseen, so the caller should poll this origin instead.
    """

    paths: frozenset[bytes] = frozenset()
    overflow: bool = False
    root_gone: bool = False
    incomplete: bool = False


@dataclass(slots=True)
class _Changes:
    """A batch being collected."""

    paths: set[bytes] = field(default_factory=set)
    overflow: bool = False
    root_gone: bool = False

    def __bool__(self) -> bool:
        return bool(self.paths) or self.overflow or self.root_gone

    def add(self, batch: ChangeBatch) -> None:
        self.paths |= batch.paths
        self.overflow |= batch.overflow
        self.root_gone |= batch.root_gone

    def freeze(self, root_gone: bool, incomplete: bool) -> ChangeBatch:
        return ChangeBatch(frozenset(self.paths), self.overflow, self.root_gone or root_gone, incomplete)


# --- the watcher ------------------------------------------------------------------------------------


class InotifyWatcher:
    """Watches a folder tree recursively with inotify and reports debounced batches of changes.

    Raises (constructor):
        OSError: inotify cannot be used (EMFILE: too many instances) or the root cannot be watched
            (missing, not a folder, unreadable). Hitting the watch limit is not raised: it shows as
            `covers_tree` False and `incomplete` in the first batch.
    """

    def __init__(self, root: bytes) -> None:
        self.root = os.path.abspath(root)
        self._fd = inotify_init()
        self._root_wd = -1
        self._paths: dict[int, bytes] = {}  # wd -> relative folder path
        self._wds: dict[bytes, int] = {}  # relative folder path -> wd
        self._children: dict[bytes, set[bytes]] = {}  # folder -> its watched subfolders
        self._aliased: set[int] = set()  # wds met again under a second path
        self._covers_tree = True
        self._limit_unreported = False
        self._root_gone = False
        try:
            self._watch_all()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"InotifyWatcher({_show(self.root)!r}, {len(self._wds)} folders)"

    def __enter__(self) -> InotifyWatcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def covers_tree(self) -> bool:
        """False once some folder could not be watched (the watch limit): poll this origin instead."""
        return self._covers_tree

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._fd < 0

    def watched_folders(self) -> frozenset[bytes]:
        """The relative paths of the folders watched now (b"" is the root); for diagnostics and tests."""
        return frozenset(self._wds)

    def close(self) -> None:
        """Release the inotify descriptor (and with it every watch). Safe to call twice."""
        if self._fd >= 0:
            _close_fd(self._fd)
            self._fd = -1
        self._forget_all()

    async def next_batch(self, debounce: float = 1.0, max_delay: float = 10.0) -> ChangeBatch:
        """Wait for changes, then return them as one batch once they settle.

        Waits (without limit) for a relevant event, then keeps collecting until `debounce` seconds pass
        without one, or `max_delay` seconds after the first, so that a copy that never ends still
        publishes. Returns at once when the root is gone or the watch limit was just hit.
        """
        await trio.lowlevel.checkpoint()
        changes = _Changes()
        while not changes and not self._must_report_now():
            await trio.lowlevel.wait_readable(self._open_fd())
            changes.add(self.read_events())
        now = trio.current_time()
        quiet_at, last_at = now + debounce, now + max_delay
        while not self._must_report_now() and now < last_at:
            if not await self._wait_readable_until(min(quiet_at, last_at)):
                break
            batch = self.read_events()
            now = trio.current_time()
            if batch.paths or batch.overflow or batch.root_gone:
                quiet_at = now + debounce
            changes.add(batch)
        self._limit_unreported = False
        return changes.freeze(self._root_gone, incomplete=not self._covers_tree)

    def read_events(self) -> ChangeBatch:
        """Read and apply the events queued now; never blocks (the batch may be empty).

        Reads at most `_MAX_READS` buffers, so that a flood of events cannot hold the event loop: what
        is left keeps the descriptor readable for the next call.
        """
        fd = self._open_fd()
        events: list[InotifyEvent] = []
        for _ in range(_MAX_READS):
            try:
                buffer = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            events.extend(parse_events(buffer))
        return self.apply_events(events)

    def apply_events(self, events: Iterable[InotifyEvent]) -> ChangeBatch:
        """Update the watches from decoded events and say what changed (`read_events` uses this).

        After an overflow (or losing a folder that was also reachable by another path) every watch
        is rebuilt on a fresh descriptor, so the caller's full rescan starts from complete coverage.
        """
        changes = _Changes()
        for event in events:
            if self._root_gone:
                break
            self._apply(event, changes)
        if changes.overflow and not self._root_gone:
            self._rebuild(changes)
        return changes.freeze(self._root_gone, incomplete=not self._covers_tree)

    # --- event handling ---

    def _apply(self, event: InotifyEvent, changes: _Changes) -> None:
        mask = event.mask
        if mask & IN_Q_OVERFLOW:
            changes.overflow = True
        elif event.wd == self._root_wd and mask & _ROOT_GONE:
            self._lose_root()
            changes.root_gone = True
        elif mask & IN_IGNORED:
            self._folder_lost(event.wd, changes)
        elif mask & IN_UNMOUNT:
            self._folder_unmounted(event.wd, changes)
        elif event.name and not event.name.startswith(b"."):
            reldir = self._paths.get(event.wd)
            if reldir is not None:
                self._entry_changed(os.path.join(reldir, event.name), mask, changes)

    def _entry_changed(self, relpath: bytes, mask: int, changes: _Changes) -> None:
        changes.paths.add(relpath)
        if mask & _VANISHED and relpath in self._wds:
            self._forget_tree(relpath, changes)
        if mask & _APPEARED:
            self._watch_tree(relpath, changes.paths)

    def _folder_lost(self, wd: int, changes: _Changes) -> None:
        """The kernel dropped a watch (its folder was deleted, or a symlink's target went away)."""
        reldir = self._paths.get(wd)
        if reldir is not None:
            changes.paths.add(reldir)
            self._forget_tree(reldir, changes)

    def _folder_unmounted(self, wd: int, changes: _Changes) -> None:
        """A filesystem mounted inside the tree went away: what is under its mount point now shows."""
        reldir = self._paths.get(wd)
        if reldir is not None:
            changes.paths.add(reldir)
            self._forget_tree(reldir, changes)
            self._watch_tree(reldir, changes.paths)

    def _lose_root(self) -> None:
        if not self._root_gone:
            log.info("watched origin folder %s is gone", _show(self.root))
        self._root_gone = True
        for wd in list(self._paths):
            rm_watch(self._fd, wd)
        self._forget_all()

    def _must_report_now(self) -> bool:
        return self._root_gone or self._limit_unreported

    # --- watches ---

    def _watch_all(self) -> None:
        """Watch the root and every folder below it; raise if the root itself cannot be watched."""
        self._root_wd = -1
        try:
            self._root_wd = add_watch(self._fd, self.root, WATCH_MASK)
        except OSError as exc:
            if exc.errno not in _LIMIT_ERRNOS:
                raise
            self._limit_hit(b"")
            return
        self._record(b"", self._root_wd)
        self._watch_below(b"", report=None)

    def _watch_tree(self, reldir: bytes, report: set[bytes] | None) -> None:
        """Watch a folder that appeared and everything below it; add what it holds to `report`.

        Does nothing for a file (IN_ONLYDIR refuses it), a hidden folder's content, a symlink leading
        out of the origin, or a folder already watched (a symlink loop, or a second path to one folder).
        """
        if not self._leads_out(os.path.join(self.root, reldir)) and self._try_watch(reldir):
            self._watch_below(reldir, report)

    def _watch_below(self, top: bytes, report: set[bytes] | None) -> None:
        pending = [top]
        while pending:
            reldir = pending.pop()
            for relpath, is_dir in self._list(reldir):
                if report is not None:
                    report.add(relpath)
                if is_dir and self._try_watch(relpath):
                    pending.append(relpath)

    def _try_watch(self, reldir: bytes) -> bool:
        """Add a watch; True if this folder is newly watched (so its content must be walked)."""
        try:
            wd = add_watch(self._fd, os.path.join(self.root, reldir), WATCH_MASK)
        except OSError as exc:
            if exc.errno in _LIMIT_ERRNOS:
                self._limit_hit(reldir)
            elif exc.errno not in (errno.ENOTDIR, errno.ENOENT):
                log.debug("cannot watch %s: %s", _show(self.root, reldir), exc.strerror)
            return False
        if wd in self._paths:
            if self._paths[wd] != reldir:
                self._aliased.add(wd)
            return False
        self._record(reldir, wd)
        return True

    def _list(self, reldir: bytes) -> list[tuple[bytes, bool]]:
        """(relative path, is a folder) of each visible entry of a folder; empty if it cannot be read."""
        found = []
        try:
            with os.scandir(os.path.join(self.root, reldir)) as scan:
                for entry in scan:
                    if not entry.name.startswith(b"."):
                        is_dir = _is_dir(entry) and not (entry.is_symlink() and self._leads_out(entry.path))
                        found.append((os.path.join(reldir, entry.name), is_dir))
        except OSError as exc:
            log.debug("cannot list %s: %s", _show(self.root, reldir), exc.strerror)
        return found

    def _leads_out(self, path: bytes) -> bool:
        """True for a symlink whose target is not inside the origin."""
        if not os.path.islink(path):
            return False
        root_real = os.path.realpath(self.root)
        real = os.path.realpath(path)
        return not (root_real == b"/" or real == root_real or real.startswith(root_real + b"/"))

    def _record(self, reldir: bytes, wd: int) -> None:
        self._paths[wd] = reldir
        self._wds[reldir] = wd
        self._children.setdefault(reldir, set())
        if reldir:
            self._children.setdefault(os.path.dirname(reldir), set()).add(reldir)

    def _forget_tree(self, top: bytes, changes: _Changes) -> None:
        """Stop watching a folder that went away and every folder below it."""
        self._children.get(os.path.dirname(top), set()).discard(top)
        pending = [top]
        while pending:
            reldir = pending.pop()
            pending.extend(self._children.pop(reldir, ()))
            wd = self._wds.pop(reldir, None)
            if wd is None:
                continue
            del self._paths[wd]
            rm_watch(self._fd, wd)
            if wd in self._aliased:
                # The folder is still reachable by its other path, now unwatched: start over.
                changes.overflow = True

    def _forget_all(self) -> None:
        self._paths.clear()
        self._wds.clear()
        self._children.clear()
        self._aliased.clear()

    def _rebuild(self, changes: _Changes) -> None:
        """Replace the descriptor and watch everything again (after lost events)."""
        old = self._fd
        self._fd = inotify_init()
        _close_fd(old)
        self._forget_all()
        try:
            self._watch_all()
        except OSError as exc:
            log.debug("cannot watch %s again: %s", _show(self.root), exc.strerror)
            self._lose_root()
            changes.root_gone = True

    def _limit_hit(self, reldir: bytes) -> None:
        if self._covers_tree:
            log.warning(
                "inotify watch limit reached (fs.inotify.max_user_watches = %s) at %s: "
                "changes there go unseen; this origin needs polling (or raise the limit)",
                _read_limit(),
                _show(self.root, reldir),
            )
            self._limit_unreported = True
        self._covers_tree = False

    def _open_fd(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O on a closed InotifyWatcher")
        return self._fd

    async def _wait_readable_until(self, deadline: float) -> bool:
        """True when the descriptor became readable before `deadline` (trio time)."""
        with trio.move_on_at(deadline):
            await trio.lowlevel.wait_readable(self._open_fd())
            return True
        return False


def _close_fd(fd: int) -> None:
    """Close a descriptor that trio may be waiting on (trio must be told first, when running)."""
    with contextlib.suppress(RuntimeError):  # not inside trio.run: nobody can be waiting on it
        trio.lowlevel.notify_closing(fd)
    os.close(fd)


def _is_dir(entry: os.DirEntry[bytes]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _read_limit() -> str:
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def _show(root: bytes, relpath: bytes = b"") -> str:
    """A path for log lines: undecodable bytes are shown as escapes, never raise."""
    path = os.path.join(root, relpath) if relpath else root
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
