"""A local (or network-mounted) folder as an origin: listing, stat and positional reads.

Owns: walking an origin folder (bytes paths throughout, so names that are not UTF-8 survive), telling
audio files and cover images apart, and the plain system calls that read a file.
Concurrency: every method does blocking I/O and may hang on a dead NAS; callers run them in worker
threads (`musicfs.origins.gateway`), except `read_nowait`, which never waits for a device and is safe
on the event loop, and `unavailable_reason`, which keeps its own deadline. Instances hold no mutable
state beyond the `supports_nowait` flag, which only ever goes from True to False, and the last root
listing of `unavailable_reason` (behind a lock), so sharing them between threads is safe.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass

from musicfs.core.deadline import in_thread
from musicfs.core.errors import OriginFileGone
from musicfs.tags import AUDIO_EXTENSIONS, is_cover_name

log = logging.getLogger(__name__)

DOES_NOT_ANSWER = "does not answer"
PROBE_TIMEOUT = 10.0  # how long a listing of the root may take before the origin counts as hung
STOP_POLL = 0.1  # how often a wait for that listing looks at its stop event
EMPTY_BUT_KNOWN = "its folder is empty but the index knows files in it (not mounted?)"
AUDIO = "audio"
COVER = "cover"
_AUDIO_SUFFIXES = tuple(f".{ext}".encode() for ext in AUDIO_EXTENSIONS)


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A file found by a walk: where it is (relative, bytes) and what identifies its version."""

    relpath: bytes
    kind: str
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int


@dataclass(slots=True)
class WalkProblems:
    """What a walk had to pass over; each problem is logged once, at WARNING, as it happens."""

    unreadable: int = 0
    loops: int = 0


class LocalOrigin:
    """A folder on a mounted filesystem, read with ordinary system calls."""

    def __init__(self, origin_id: int, root: bytes) -> None:
        self.origin_id = origin_id
        self.root = os.path.abspath(root)
        self.supports_nowait = hasattr(os, "preadv") and hasattr(os, "RWF_NOWAIT")
        self._probe: Future[bool] | None = None  # the last listing of the root, maybe still stuck
        self._probe_started = 0.0
        self._probe_used = False  # its answer was given to a caller: the next one needs a new listing
        self._probe_lock = threading.Lock()

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
        """
        with self._probe_lock:
            if self._probe is None or (self._probe.done() and self._probe_used):
                name = f"musicfs-probe:{os.fsdecode(self.root)}"
                self._probe, self._probe_started = in_thread(self._root_is_empty, name), time.monotonic()
                self._probe_used = False
            probe, waiting = self._probe, time.monotonic() - self._probe_started
        deadline = time.monotonic() + max(0.0, timeout - waiting)
        while not probe.done():
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                waited = time.monotonic() - self._probe_started
                return f"{os.fsdecode(self.root)}: {DOES_NOT_ANSWER} (a listing has waited {waited:.1f} s)"
            futures.wait((probe,), timeout=min(left, STOP_POLL))  # never raises the call's error
        self._probe_used = True
        try:
            empty = probe.result()
        except OSError as exc:
            return f"{os.fsdecode(self.root)}: {exc.strerror}"
        return EMPTY_BUT_KNOWN if empty and knows_files else None

    def _root_is_empty(self) -> bool:
        with os.scandir(self.root) as entries:
            return next(entries, None) is None

    def walk(self, problems: WalkProblems) -> Iterator[FoundFile]:
        """Yield every audio file and cover image below the root, following symlinks safely.

        Hidden entries (names starting with '.') are skipped. Unreadable folders and files, broken
        links and symlink loops are logged and counted in `problems`, never raised.
        """
        root_stat = os.stat(self.root)
        visited = {(root_stat.st_dev, root_stat.st_ino)}
        pending = [b""]
        while pending:
            reldir = pending.pop()
            yield from self._walk_dir(reldir, visited, pending, problems)

    def _walk_dir(
        self, reldir: bytes, visited: set[tuple[int, int]], pending: list[bytes], problems: WalkProblems
    ) -> Iterator[FoundFile]:
        try:
            with os.scandir(os.path.join(self.root, reldir)) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            problems.unreadable += 1
            log.warning("cannot list %s: %s", _show(self.root, reldir), exc.strerror)
            return
        for entry in entries:
            if entry.name.startswith(b"."):
                continue
            relpath = os.path.join(reldir, entry.name)
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                problems.unreadable += 1
                log.warning("cannot stat %s: %s", _show(self.root, relpath), exc.strerror)
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in visited:
                    problems.loops += 1
                    log.warning(
                        "skipping %s: folder already visited (symlink loop?)", _show(self.root, relpath)
                    )
                    continue
                visited.add(key)
                pending.append(relpath)
            elif stat.S_ISREG(st.st_mode):
                kind = _kind_of(entry.name)
                if kind is not None:
                    yield FoundFile(
                        relpath, kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino
                    )

    def open(self, relpath: bytes) -> int:
        """Open a file for reading; OriginFileGone if it is not there any more."""
        try:
            return os.open(self.abspath(relpath), os.O_RDONLY | os.O_CLOEXEC | os.O_NOATIME)
        except PermissionError:
            # O_NOATIME is refused for files we do not own unless we are root.
            return self._open_plain(relpath)
        except FileNotFoundError:
            raise OriginFileGone(os.fsdecode(relpath)) from None

    def _open_plain(self, relpath: bytes) -> int:
        try:
            return os.open(self.abspath(relpath), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OriginFileGone(os.fsdecode(relpath)) from None

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


def _kind_of(name: bytes) -> str | None:
    lower = name.lower()
    if lower.endswith(_AUDIO_SUFFIXES):
        return AUDIO
    if is_cover_name(os.fsdecode(name)):
        return COVER
    return None


def _show(root: bytes, relpath: bytes) -> str:
    """A path for log lines: undecodable bytes are shown as escapes, never raise."""
    return os.fsdecode(os.path.join(root, relpath)).encode("utf-8", "backslashreplace").decode("utf-8")
