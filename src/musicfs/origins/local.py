"""A local (or network-mounted) folder as an origin (`musicfs.origins.base.Origin`): listing, stat and
positional reads.

Owns: walking an origin folder (bytes paths throughout, so names that are not UTF-8 survive), telling
audio files and cover images apart, the plain system calls that read a file, and the rule of what
may be served at all (docs/threat-model.md):
  - nothing outside the origin: a symlink whose target leaves the origin root is never followed, by
    the walk or by an open (an open checks where the kernel really resolved the path, so a symlink
    swapped in after the scan is refused too);
  - only regular files: a FIFO, socket or device where a track was is never opened (the open pins the
    path with O_PATH, checks the file type with fstat and only then opens that very inode, with
    O_NONBLOCK), so no open can block on it;
  - with a shared mount (`shared_mount`, set for `allow_other`), only what every local user could read
    in the origin itself: the file readable by others (o+r) and every folder from the origin root
    down listable and searchable by others (o+rx).
Symlinks inside the origin are followed, but a folder the walk can reach without a symlink is walked
at that path, never at a symlink's (folders reached through symlinks are walked last, each folder once),
and every file found through a symlink is marked `linked`, so the index can show one copy of a file
reached by several paths (issue 13.3).
Walk problems (unreadable folders, dangling symlinks, symlink loops, refused entries) are logged at
WARNING the first time they are met and at DEBUG on later walks, until they go away.
Concurrency: every method does blocking I/O and may hang on a dead NAS; callers run them in worker
threads (`musicfs.origins.gateway`), except `read_nowait`, which never waits for a device and is safe
on the event loop, and `unavailable_reason`, which keeps its own deadline. Instances are shared
between threads: `supports_nowait` only ever goes from True to False, the cached real path of the root
is replaced whole (a reference swap), the last root listing of `unavailable_reason` is shared
(`musicfs.origins.probe`), and the memory of logged walk problems is only touched by `walk`, which
runs one at a time (the library's update lock).
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from musicfs.core.errors import OriginFileGone, OriginFileNotRegular, OriginFileRefused
from musicfs.core.kinds import kind_of
from musicfs.origins.base import DOES_NOT_ANSWER, EMPTY_BUT_KNOWN, FoundFile, ProblemLog, WalkProblems
from musicfs.origins.probe import NoAnswer, SharedProbe

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0  # how long a listing of the root may take before the origin counts as hung
_PROC_FD = b"/proc/self/fd/%d"
_OTHERS_RX = stat.S_IROTH | stat.S_IXOTH


@dataclass(slots=True)
class _Walk:
    """The state of one walk: folders to walk (`pending`: reached without a symlink; `linked`: through
    one, with their device and inode) and the folders walked or queued so far."""

    root_real: bytes
    visited: set[tuple[int, int]]
    problems: WalkProblems
    pending: list[bytes] = field(default_factory=list)
    linked: list[tuple[bytes, tuple[int, int]]] = field(default_factory=list)


class LocalOrigin:
    """A folder on a mounted filesystem, read with ordinary system calls.

    Args:
        origin_id: the index's number for this origin.
        root: the origin folder.
        shared_mount: the mount is shared with every local user (`allow_other`): show and serve only
            what every user could read in the origin itself.
    """

    def __init__(self, origin_id: int, root: bytes, *, shared_mount: bool = False) -> None:
        self.origin_id = origin_id
        self.root = os.path.abspath(root)
        self.shared_mount = shared_mount
        self.supports_nowait = hasattr(os, "preadv") and hasattr(os, "RWF_NOWAIT")
        self._probe = SharedProbe(self._root_state, f"musicfs-probe:{os.fsdecode(self.root)}")
        self._problems = ProblemLog()
        self._root_real: bytes | None = None  # found by the first open (never on the constructor's
        # thread: the root may be on a hung NAS), found again when an open seems to lead out

    def __repr__(self) -> str:
        return f"LocalOrigin({self.origin_id}, {os.fsdecode(self.root)!r})"

    def abspath(self, relpath: bytes) -> bytes:
        return os.path.join(self.root, relpath)

    def unavailable_reason(
        self, knows_files: bool, timeout: float = PROBE_TIMEOUT, stop: threading.Event | None = None
    ) -> str | None:
        """Why this origin cannot be trusted to show its files now, or None when it can.

        It cannot when its folder cannot be listed, or when the folder is empty while the index knows
        files in it (`knows_files`): an unmounted NAS looks exactly like that, and must never be taken
        for a deleted library. One listing of the root, never more, in a thread of its own (7.4): a
        listing that has not answered within `timeout` (a frozen NAS) makes the origin unavailable.
        Callers share a listing under way, and one stuck for longer than a caller's `timeout` answers
        that caller at once, so a hung origin holds one thread, never a pile; a listing that ended
        since the last answer is used by the next caller (a slow NAS is not taken for a hung one).
        `stop` being set ends the wait early (a shutdown).
        With a shared mount, a root folder that other users may not list is unavailable too (nothing
        below it may be shown).
        """
        try:
            empty, mode = self._probe.ask(timeout, stop)
        except NoAnswer as exc:
            return f"{os.fsdecode(self.root)}: {DOES_NOT_ANSWER} (a listing has waited {exc.waited:.1f} s)"
        except OSError as exc:
            return f"{os.fsdecode(self.root)}: {exc.strerror}"
        if self.shared_mount and mode & _OTHERS_RX != _OTHERS_RX:
            return (
                f"{os.fsdecode(self.root)}: other users may not list it (mode {stat.S_IMODE(mode):04o}) "
                "and the mount is shared with them (allow_other)"
            )
        return EMPTY_BUT_KNOWN if empty and knows_files else None

    def _root_state(self) -> tuple[bool, int]:
        """Whether the root folder is empty, and its mode."""
        with os.scandir(self.root) as entries:
            empty = next(entries, None) is None
        return empty, os.stat(self.root).st_mode

    def walk(self, problems: WalkProblems) -> Iterator[FoundFile]:
        """Yield every audio file and cover image below the root that may be served.

        Hidden entries (names starting with '.') are skipped, and so is everything the module
        docstring's rule refuses. Symlinks inside the origin are followed, each folder once: folders
        reached through a symlink wait until every folder reachable without one has been walked, so a
        folder is walked at its real path whenever it has one. A symlink to a folder walked already is
        passed over quietly (it shows nothing new), one to a folder above it is a loop.
        Unreadable folders and files, broken links, symlink loops and refused entries are counted in
        `problems` and logged (once, see `ProblemLog`), never raised.
        """
        root_real = os.path.realpath(self.root)
        root_stat = os.stat(self.root)
        walk = _Walk(root_real, {(root_stat.st_dev, root_stat.st_ino)}, problems)
        walk.pending.append(b"")
        complete = False
        try:
            while walk.pending or walk.linked:
                if walk.pending:
                    yield from self._walk_dir(walk.pending.pop(), walk, linked=False)
                    continue
                reldir, key = walk.linked.pop()
                if key in walk.visited:
                    log.debug("%s shows a folder walked already; passed over", _show(self.root, reldir))
                    continue
                walk.visited.add(key)
                yield from self._walk_dir(reldir, walk, linked=True)
            complete = True
        finally:
            self._problems.walk_ended(complete)

    def _walk_dir(self, reldir: bytes, walk: _Walk, *, linked: bool) -> Iterator[FoundFile]:
        warn, problems = self._problems.warn, walk.problems
        try:
            with os.scandir(os.path.join(self.root, reldir)) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            problems.unreadable += 1
            problems.unreachable.append(reldir)
            warn("list", reldir, "cannot list %s: %s", _show(self.root, reldir), exc.strerror)
            return
        here_real: bytes | None = None  # this folder's real path, found when a symlink needs it
        for entry in entries:
            if entry.name.startswith(b"."):
                continue
            relpath = os.path.join(reldir, entry.name)
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                problems.unreadable += 1
                if exc.errno != errno.ENOENT:  # a broken symlink is gone; anything else is out of reach
                    problems.unreachable.append(relpath)
                warn("stat", relpath, "cannot stat %s: %s", _show(self.root, relpath), exc.strerror)
                continue
            is_link = entry.is_symlink()
            target = os.path.realpath(entry.path) if is_link else b""
            if is_link and not _inside(target, walk.root_real):
                problems.refused += 1
                warn(
                    "outside",
                    relpath,
                    "skipping %s: a symlink leading outside the origin",
                    _show(self.root, relpath),
                )
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if is_link:
                    here_real = here_real or os.path.realpath(os.path.join(self.root, reldir))
                    if _inside(here_real, target):
                        problems.loops += 1
                        warn("loop", relpath, "skipping %s: a symlink loop", _show(self.root, relpath))
                        continue
                if self.shared_mount and st.st_mode & _OTHERS_RX != _OTHERS_RX:
                    problems.refused += 1
                    warn("private", relpath, "skipping %s: %s", _show(self.root, relpath), _private(st))
                elif is_link or linked:
                    walk.linked.append((relpath, key))  # visited or not once every real folder is
                elif key not in walk.visited:  # another path to it: a bind mount
                    walk.visited.add(key)
                    walk.pending.append(relpath)
                continue
            kind = kind_of(entry.name)
            if kind is None:
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.refused += 1
                warn("type", relpath, "skipping %s: %s", _show(self.root, relpath), _not_regular(st))
            elif self.shared_mount and not st.st_mode & stat.S_IROTH:
                problems.refused += 1
                warn("private", relpath, "skipping %s: %s", _show(self.root, relpath), _private(st))
            else:
                yield FoundFile(
                    relpath,
                    kind,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                    st.st_dev,
                    st.st_ino,
                    linked=linked or is_link,
                )

    def open(self, relpath: bytes) -> int:
        """Open a file for reading, never blocking on it and never following it out of the origin.

        Raises:
            OriginFileGone: it is not there (any more).
            OriginFileNotRegular: a FIFO, socket, device or folder stands there; it was not opened.
            OriginFileRefused: it lies outside the origin, or (shared mount) others may not read it.
        """
        return self._open_checked(relpath)

    def open_stream(self, relpath: bytes) -> io.BufferedReader:
        """`open`, as a buffered binary file named by its origin path (for tag readers)."""
        raw = io.FileIO(self._open_checked(relpath), "r", closefd=True)
        raw.name = self.abspath(relpath)
        return io.BufferedReader(raw)

    def _open_checked(self, relpath: bytes) -> int:
        try:
            # O_PATH resolves the path without opening the file: no FIFO wait, no device side effect.
            pinned = os.open(self.abspath(relpath), os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OriginFileGone(os.fsdecode(relpath)) from None
        try:
            self._check_servable(relpath, pinned)
            return _reopen(pinned)
        finally:
            os.close(pinned)

    def _check_servable(self, relpath: bytes, pinned: int) -> None:
        """Refuse what the module docstring's rule refuses, judging the inode `pinned` holds."""
        found = os.fstat(pinned)
        shown = _show(self.root, relpath)
        if not stat.S_ISREG(found.st_mode):
            raise OriginFileNotRegular(f"{shown}: {_not_regular(found)}; not opened")
        where = os.readlink(_PROC_FD % pinned)  # where the kernel really resolved the path
        root_real = self._root_real
        if root_real is None or not _inside(where, root_real):
            self._root_real = root_real = os.path.realpath(self.root)  # the root may be a moved symlink
            if not _inside(where, root_real):
                raise OriginFileRefused(f"{shown} leads outside its origin; not served")
        if not self.shared_mount:
            return
        if not found.st_mode & stat.S_IROTH:
            raise OriginFileRefused(f"{shown}: {_private(found)}; not served")
        folder = os.path.dirname(where)
        while _inside(folder, root_real):
            mode = os.stat(folder).st_mode
            if mode & _OTHERS_RX != _OTHERS_RX:
                raise OriginFileRefused(f"{shown}: its folder {_show(folder)} is private ({_private(mode)})")
            if folder == root_real:
                break
            folder = os.path.dirname(folder)

    def version_of(self, fd: int) -> tuple[int, int, int]:
        found = os.fstat(fd)
        return found.st_size, found.st_mtime_ns, found.st_ctime_ns

    def read_nowait(self, fd: int, size: int, offset: int) -> bytearray | None:
        """Read only what the page cache already holds; None when that would mean waiting for a device.

        Uses preadv2(RWF_NOWAIT). Filesystems that do not support it (NFS, FUSE, ...) switch this
        origin to threaded reads for good.
        """
        if not self.supports_nowait:
            return None
        buffer = bytearray(size)
        try:
            count = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                self.supports_nowait = False
                return None
            raise
        if count < size and count + offset < os.fstat(fd).st_size:
            return None  # partly cached: let a thread read the whole request
        del buffer[count:]
        return buffer  # no copy: pyfuse3 replies from any buffer

    def read(self, fd: int, size: int, offset: int) -> bytes:
        """Read `size` bytes at `offset` (fewer only at the end of the file), however long it takes.

        A short read in the middle of a file (network filesystems do that) is continued, since FUSE
        would take it for the end of the file.
        """
        data = self._pread(fd, size, offset)
        while 0 < len(data) < size:
            more = self._pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def _pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def close(self, fd: int) -> None:
        os.close(fd)


def _reopen(pinned: int) -> int:
    """Open the very inode an O_PATH descriptor holds, for reading, without blocking (a lease), then
    switch the descriptor back to blocking reads."""
    path = _PROC_FD % pinned
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:  # O_NOATIME is refused for files we do not own unless we are root
        fd = os.open(path, flags)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _inside(path: bytes, root: bytes) -> bool:
    return root == b"/" or path == root or path.startswith(root + b"/")


def _not_regular(found: os.stat_result) -> str:
    kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device"}
    kinds |= {stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}
    return f"not a regular file ({kinds.get(stat.S_IFMT(found.st_mode), 'of an unknown type')})"


def _private(found: os.stat_result | int) -> str:
    mode = found if isinstance(found, int) else found.st_mode
    return (
        f"other users may not read it (mode {stat.S_IMODE(mode):04o}) and the mount is shared "
        "with them (allow_other)"
    )


def _show(root: bytes, relpath: bytes = b"") -> str:
    """A path for log lines: undecodable bytes are shown as escapes, never raise."""
    path = os.path.join(root, relpath) if relpath else root
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
