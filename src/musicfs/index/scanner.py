"""Bringing the index up to date with one origin: find what is new, changed, moved or gone.

Owns: the comparison of a walk with the stored versions, tag reading in a small thread pool, and the
rule that protects users' libraries: an origin that cannot be listed, or that is suddenly empty while
the index knows files in it (an unmounted NAS looks exactly like that), is reported unavailable and
nothing of it is removed; likewise, known files below a folder the walk could not list or stat (a
dead share mounted inside the origin) are kept, not taken for deleted, and a file whose tags could
not be read because the origin failed under the reader is left for the next scan (a scan whose
origin is unavailable after such a failure stops there).

Changes are committed in batches, so a scan that is killed keeps what it had committed and the next
scan only reads what is still missing. Removals are applied only after a complete walk.
Concurrency: runs in one worker thread (plus its tag-reading pool); talks to the index only through
`Index` methods, each a transaction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from musicfs.core.errors import OriginError, OriginTimeout, OriginUnavailable, TagReadError
from musicfs.core.faults import fault_point
from musicfs.core.kinds import AUDIO
from musicfs.core.types import Progress
from musicfs.index.store import FileVersion, Index, NewFile
from musicfs.origins.base import FoundFile, Origin, WalkProblems
from musicfs.tags import Track, read_track

log = logging.getLogger(__name__)

BATCH = 500
TAG_THREADS = 4


@dataclass(slots=True)
class ScanReport:
    """What one scan of one origin found and did."""

    origin: str
    found: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    removed: int = 0
    bad_tags: int = 0
    unreadable: int = 0
    refused: int = 0
    out_of_reach: int = 0  # known files not seen because their folder could not be looked into: kept
    unavailable: str | None = None
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.moved + self.removed

    def summary(self) -> str:
        if self.unavailable:
            return f"{self.origin}: unavailable ({self.unavailable}); known files kept"
        counts = (
            (self.added, "new"),
            (self.changed, "changed"),
            (self.moved, "moved"),
            (self.removed, "removed"),
            (self.bad_tags, "with unreadable tags"),
            (self.unreadable, "unreadable"),
            (self.refused, "refused"),
            (self.out_of_reach, "known files out of reach kept"),
        )
        said = ", ".join(f"{count} {what}" for count, what in counts if count) or "unchanged"
        return f"{self.origin}: {self.found} files, {said} ({self.seconds:.1f} s)"


class ScanCancelled(Exception):
    """The scan was asked to stop (shutdown); what it had committed stays."""


def scan_origin(
    index: Index, origin: Origin, progress: Progress | None = None, stop: threading.Event | None = None
) -> ScanReport:
    """Scan one origin and apply what changed to the index; see the module docstring for the rules.

    Raises ScanCancelled soon after `stop` is set.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    report = ScanReport(origin=os.fsdecode(origin.root))
    stored = index.stored_files(origin.origin_id)
    try:
        reason = origin.unavailable_reason(knows_files=bool(stored), stop=stop)
        if stop.is_set():
            raise ScanCancelled()
        if reason is not None:
            raise OriginUnavailable(reason)
        problems = WalkProblems()
        # Compare as the walk goes and keep only what changed: holding every file found at once
        # cost ~600 bytes per track of memory the allocator never gave back (bench/startup.py).
        todo: list[FoundFile] = []
        unseen = set(stored)
        for found_file in origin.walk(problems):
            report.found += 1
            unseen.discard(found_file.relpath)
            known = stored.get(found_file.relpath)
            if known is None or known.version != _version(found_file):
                todo.append(found_file)
            if report.found % 1000 == 0 and stop.is_set():
                raise ScanCancelled()
    except (OriginUnavailable, OSError) as exc:
        report.unavailable = str(exc)
        log.warning("origin %s", report.summary())
        return report
    report.unreadable = problems.unreadable
    report.refused = problems.refused
    gone = [stored[relpath] for relpath in unseen if problems.reaches(relpath)]
    report.out_of_reach = len(unseen) - len(gone)
    moved_from = {(e.version.dev, e.version.ino, e.version.size): e.inode for e in gone}
    moved_inodes: set[int] = set()
    done = report.found - len(todo)
    for start in range(0, len(todo), BATCH):
        if stop.is_set():
            raise ScanCancelled()
        pairs = list(_read_tags(origin, todo[start : start + BATCH]))
        lost = [tags for _, tags in pairs if isinstance(tags, Exception) and _unreached(tags)]
        batch = [_with_tags(origin, pair, report) for pair in pairs if not _unreached(pair[1])]
        added: list[NewFile] = []
        changed: dict[int, NewFile] = {}
        for new in batch:
            if new.relpath in stored:
                changed[stored[new.relpath].inode] = new
                report.changed += 1
            elif (inode := moved_from.pop(_move_key(new), None)) is not None:
                changed[inode] = new
                moved_inodes.add(inode)
                report.moved += 1
            else:
                added.append(new)
                report.added += 1
        fault_point("scan.apply")
        index.apply(origin.origin_id, added=added, changed=changed)
        done += len(pairs)
        if progress:
            progress(done, report.found)
        if lost and _lost_origin(origin, lost, report, stop):
            return report
    removed = [e.inode for e in gone if e.inode not in moved_inodes]
    if removed:
        index.apply(origin.origin_id, removed=removed)
    report.removed = len(removed)
    report.seconds = time.monotonic() - started
    if progress:
        progress(report.found, report.found)
    return report


def _unreached(tags: Track | Exception | None) -> bool:
    """The origin failed under the tag reader (not the file: a refused or missing one is stored)."""
    return isinstance(tags, (OriginUnavailable, OriginTimeout))


def _lost_origin(origin: Origin, lost: list[Exception], report: ScanReport, stop: threading.Event) -> bool:
    """Files whose tags could not be read because their origin failed under the reader (a remote
    server went away) are left for the next scan, not stored without tags; when the origin is
    unavailable now, the scan ends here (what it committed is kept, nothing is removed)."""
    report.unreadable += len(lost)
    log.warning(
        "could not read %d files of %s now (%s); the next scan tries them again",
        len(lost),
        report.origin,
        lost[0],
    )
    reason = origin.unavailable_reason(knows_files=True, stop=stop)
    if reason is None:
        return False
    report.unavailable = reason
    log.warning("origin %s", report.summary())
    return True


def _version(found: FoundFile) -> FileVersion:
    return FileVersion(found.size, found.mtime_ns, found.ctime_ns, found.dev, found.ino, found.linked)


def _move_key(new: NewFile) -> tuple[int, int, int]:
    return (new.version.dev, new.version.ino, new.version.size)


def _read_tags(
    origin: Origin, files: list[FoundFile]
) -> Iterable[tuple[FoundFile, Track | Exception | None]]:
    """Pair each file with its tags and embedded cover (audio), the error reading them, or None (covers).

    Tags are read through the origin's checked open, so a file swapped for a FIFO or for a symlink
    leading out after the walk is neither waited on nor read.
    """

    def read(found: FoundFile) -> tuple[FoundFile, Track | Exception | None]:
        if found.kind != AUDIO:
            return found, None
        try:
            with origin.open_stream(found.relpath) as stream:
                return found, read_track(stream)
        except (TagReadError, OriginError) as exc:
            return found, exc
        except OSError as exc:
            return found, TagReadError(exc.strerror or str(exc))

    with ThreadPoolExecutor(TAG_THREADS, thread_name_prefix="musicfs-tags") as pool:
        yield from pool.map(read, files)


def _with_tags(
    origin: Origin, pair: tuple[FoundFile, Track | Exception | None], report: ScanReport
) -> NewFile:
    found, track = pair
    if isinstance(track, Exception):
        report.bad_tags += 1
        shown = os.fsdecode(origin.abspath(found.relpath)).encode("utf-8", "backslashreplace").decode()
        log.warning("cannot read tags of %s (%s); shown under its file name", shown, track)
        track = None
    if track is None:
        return NewFile(found.relpath, found.kind, _version(found), None)
    return NewFile(found.relpath, found.kind, _version(found), track.tags, track.picture)
