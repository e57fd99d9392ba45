"""`musicfs fsck`: check the index and the cache of a stopped instance, and say what was wrong.

Owns: the on-demand checks. The index gets SQLite's quick_check (integrity_check with `--full`); a
damaged index is only reported unless `--repair` is given, which sets it aside to be rebuilt by the
next scan. The cache gets the same check as at start (every chunk verified with `--full`); since it
only holds copies of origin data, what it finds is always repaired (stray temp files and orphans
removed, bad chunks quarantined), telling `progress` as it verifies the chunks. The exit code is 0
when nothing was wrong, 1 otherwise; a state directory that does not exist is an error (5), never
created.
Concurrency: takes the instance lock first, so it never runs beside a mount of the same state dir.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from musicfs.cache.store import ChunkStore, Watermarks
from musicfs.core.errors import StateDirError
from musicfs.core.types import Progress
from musicfs.daemon.lock import InstanceLock
from musicfs.daemon.preflight import prepare_state_dir
from musicfs.index.schema import INDEX_NAME
from musicfs.index.store import Index


@dataclass(slots=True)
class FsckReport:
    lines: list[str] = field(default_factory=list)
    problems: int = 0


def fsck(
    state_dir: Path, cache_dir: Path, *, full: bool, repair: bool, progress: Progress | None = None
) -> FsckReport:
    report = FsckReport()
    if not state_dir.is_dir():  # a typo must not become a new, empty state dir that "has no problems"
        what = "is not a folder" if state_dir.exists() else "does not exist"
        raise StateDirError(f"state dir {state_dir} {what} (a typo?)")
    prepare_state_dir(state_dir)
    lock = InstanceLock(state_dir)
    lock.acquire()
    try:
        _check_index(state_dir / INDEX_NAME, full, repair, report)
        _check_cache(cache_dir, full, report, progress)
    finally:
        lock.release()
    return report


def _check_index(path: Path, full: bool, repair: bool, report: FsckReport) -> None:
    if not path.exists():
        report.lines.append(f"index {path}: none yet (the first scan builds it)")
        return
    pragma = "integrity_check" if full else "quick_check"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            found = [row[0] for row in db.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        found = [str(exc)]
    if found == ["ok"]:
        report.lines.append(f"index {path}: {pragma} ok")
        return
    report.problems += 1
    report.lines.append(f"index {path}: {pragma} found problems: {'; '.join(found[:3])}")
    if repair:
        Index(path, deep_check=full).close()  # sets a damaged index aside; the next scan rebuilds it
        report.lines.append("index: set aside; the next scan rebuilds it from the origins")
    else:
        report.lines.append("index: run again with --repair to set it aside and rebuild it")


def _check_cache(cache_dir: Path, full: bool, report: FsckReport, progress: Progress | None) -> None:
    if not (cache_dir / "chunks").is_dir():
        report.lines.append(f"cache {cache_dir}: none")
        return
    store = ChunkStore(cache_dir, watermarks=Watermarks(2**62))  # a check never evicts
    try:
        if store.mode != "ok":
            report.problems += 1
            report.lines.append(f"cache {cache_dir}: cannot be used ({store.usage().reason})")
            return
        checked = store.check(full=full, progress=progress)
        usage = store.usage()
    finally:
        store.close()
    report.problems += checked.repairs
    found = (
        (int(checked.database_set_aside), "database set aside"),
        (checked.corrupt_quarantined, "corrupt quarantined"),
        (checked.stray_temp_removed, "stray temp files"),
        (checked.orphan_files_removed, "orphans"),
        (checked.missing_files_forgotten, "missing files"),
        (checked.unreferenced_removed, "unreferenced"),
    )
    repaired = ", ".join(f"{count} {what}" for count, what in found if count)
    done = f"{checked.repairs} repaired ({repaired})" if checked.repairs else "nothing to repair"
    report.lines.append(f"cache {cache_dir}: {usage.chunks} chunks, {checked.verified} verified, {done}")
