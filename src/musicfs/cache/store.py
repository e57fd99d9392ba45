"""The chunk store: verified, content-addressed chunks of origin files in a cache folder.

Owns the cache folder:

    CACHE_DIR/cache.sqlite     which chunk holds which part of which file version (`records`)
    CACHE_DIR/chunks/ab/abcd…  chunk files, named by the SHA-256 of their bytes
    CACHE_DIR/tmp/             chunks being written (anything left here after a crash is removed)
    CACHE_DIR/quarantine/      chunks that failed verification (the newest QUARANTINE_KEEP kept)
    CACHE_DIR/in-use           present while a store is open: found at open = unclean shutdown

A file version (`VersionKey`) is cut into CHUNK_SIZE pieces aligned to file offsets: chunk k holds
[k*CHUNK_SIZE, (k+1)*CHUNK_SIZE). Identical chunks of different files share one chunk file.

Publishing a chunk: hash, write `tmp/<random>`, fsync, rename into `chunks/`, fsync the folder, and
only then record it; a crash at any step leaves the old state (plus an orphan file or stray temp
file that `check` removes), never a record of a partial chunk. A chunk whose bytes do not match its
name is moved to `quarantine/`, forgotten and never returned (the caller reads the origin again).
Every read is verified: the blocks it returns are checked against the checksums recorded with the
chunk (`cache/verify.py`: xxh3 per 64 KiB, at memory speed), so a part of a chunk costs only the
blocks it covers; a chunk of a migrated schema-1 cache is checked whole by its SHA-256 at its first
read, and its checksums are recorded then.

Space: before each new chunk, `Watermarks` decide whether least-recently-used chunks must be evicted
(never chunks of versions being read: `reading()` or `pinned=`); if that cannot make room the chunk
is not cached. Last use is a logical clock kept in the database, updated in batches.

Failures of the cache disk (ENOSPC, EROFS, EIO, a vanished folder, an unusable database, a disk that
does not answer within `io_timeout`) never reach the caller: the store turns into a pass-through
(get misses, put stores nothing), logs one WARNING, and every `retry_interval` seconds tries to
reopen (reopening the database and running `check`). It re-enables only if `chunks/` exists again,
so an empty mount point of an absent cache disk is never filled.

A hung disk (7.4): every call that touches the disk, opening and closing included, runs in the
store's `DeadlineWorkers` (at most DISK_THREADS threads) and is waited for up to `io_timeout` (a
check, as long as it keeps making progress). The first call past its deadline turns the store
pass-through; until that call has returned, nothing touches the disk again and every call returns
at once, so a frozen disk delays one call, holds at most DISK_THREADS threads, and never blocks the
exit (the threads are daemon threads, and `close` has the same deadline).
A database given up on (a failure, a hang) is never closed under a call still using it: it is kept
aside and closed when the store reopens (no call can be on it by then) or closes. Each failure
starts a new epoch; a call that fails on the database of an older epoch changes nothing.
Concurrency: every method may be called from any thread (the event loop only `pin`, `unpin`,
`chunk_length` and `mode`, which never touch the disk). The database has its own lock (one
transaction per call); the store's lock serialises changes of the chunk folder with their records
(publish, evict, quarantine, check), so eviction never unlinks a chunk a concurrent put just
published. Chunk bytes are read and written outside that lock. `check` holds it throughout. The
state lock guards only which database is current and why the store is off; no I/O happens under it.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

from musicfs.cache.records import CacheRecords, Recorded, Totals
from musicfs.cache.space import DiskSpace, Watermarks, excess, statvfs_space
from musicfs.cache.verify import BLOCK, address_of, blocks_intact, checks_of
from musicfs.core.deadline import DeadlineWorkers, Stalled
from musicfs.core.faults import fault_point
from musicfs.core.types import Progress, VersionKey

__all__ = ["CHUNK_SIZE", "CacheUsage", "CheckReport", "ChunkStore", "VersionKey", "Watermarks"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
DB_NAME = "cache.sqlite"
MARKER_NAME = "in-use"
QUARANTINE_KEEP = 32
TOUCH_BATCH = 256  # uses kept in memory before they are written to the database
SAMPLE_SIZE = 64  # chunks verified by a quick check
DISK_THREADS = 8  # the most threads a hung cache disk can hold

_HASH_NAME = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")
Mode = Literal["ok", "pass-through"]


class _StorageFailure(Exception):
    """The cache disk or database failed; the store must go pass-through."""


@dataclass(slots=True)
class CheckReport:
    """What a check found and repaired (every count is of things repaired)."""

    database_set_aside: bool = False
    stray_temp_removed: int = 0
    orphan_files_removed: int = 0
    missing_files_forgotten: int = 0
    unreferenced_removed: int = 0
    verified: int = 0
    corrupt_quarantined: int = 0
    failure: str | None = None  # set if the cache disk failed during the check (pass-through now)

    @property
    def repairs(self) -> int:
        return (
            int(self.database_set_aside)
            + self.stray_temp_removed
            + self.orphan_files_removed
            + self.missing_files_forgotten
            + self.unreferenced_removed
            + self.corrupt_quarantined
        )


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """For `musicfs status` and metrics."""

    bytes: int
    chunks: int
    versions: int
    hits: int
    misses: int
    evictions: int
    not_cached_full: int
    quarantined: int
    mode: Mode
    reason: str | None


@dataclass(slots=True)
class _Counters:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    not_cached_full: int = 0
    quarantined: int = 0


@dataclass(slots=True)
class _Uses:
    """Last uses not yet written to the database, and the logical clock they come from."""

    tick: int = 0
    pending: dict[str, int] = field(default_factory=dict)


class ChunkStore:
    """The content cache in one folder. Call `check()` once after opening, before serving reads."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        watermarks: Watermarks,
        chunk_size: int = CHUNK_SIZE,
        block_size: int = BLOCK,
        retry_interval: float = 30.0,
        io_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        disk_space: Callable[[Path], DiskSpace] = statvfs_space,
    ) -> None:
        """Opens the cache folder (within `io_timeout`: a frozen disk leaves the store pass-through)."""
        if chunk_size <= 0 or block_size <= 0:
            raise ValueError("chunk_size and block_size must be positive")
        self.cache_dir = cache_dir
        self.watermarks = watermarks
        self.chunk_size = chunk_size
        self.block_size = block_size
        self.retry_interval = retry_interval
        self._clock = clock
        self._disk_space = disk_space
        self._disk = DeadlineWorkers("musicfs-cache", DISK_THREADS, io_timeout)
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._uses_lock = threading.Lock()
        self._uses = _Uses()
        self._counters = _Counters()
        self._pins: dict[VersionKey, int] = {}
        self._pins_lock = threading.Lock()  # only ever held for a dict update
        self._writing: set[str] = set()  # temp file names of puts in progress
        self._records: CacheRecords | None = None
        self._given_up: list[CacheRecords] = []  # databases of failed epochs, closed once unused
        self._epoch = 0
        self._closed = False  # a database a late call opens after `close` is closed at once
        self._used_bytes = 0
        self._failure: str | None = None
        self._retry_at = 0.0
        self.unclean = False
        try:
            self._disk.call(self._open_first)
        except (OSError, sqlite3.Error) as exc:  # Stalled is an OSError too
            self._fail(exc)

    def _open_first(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._install(self._open(first=True), epoch=0)

    # -- the read path -------------------------------------------------------------------------

    def get(self, version: VersionKey, chunk_index: int) -> bytes | None:
        """The bytes of this chunk if cached and intact; None otherwise."""
        return self.read(version, chunk_index, 0, self.chunk_length(version, chunk_index))

    def read(self, version: VersionKey, chunk_index: int, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of this chunk if cached and intact (only the blocks covering them are
        read and checked); None otherwise."""
        found = self._guarded(lambda records: self._read(records, version, chunk_index, start, end), None)
        if found is None:
            self._counters.misses += 1
        else:
            self._counters.hits += 1
        return found

    def put(self, version: VersionKey, chunk_index: int, data: bytes) -> bool:
        """Cache this chunk; False if it was not (wrong length, no room, pass-through). Never raises
        for a failure of the cache disk."""
        if chunk_index < 0 or len(data) != self.chunk_length(version, chunk_index) or not data:
            log.debug("not caching chunk %d of %r: %d bytes do not fit", chunk_index, version, len(data))
            return False
        return self._guarded(lambda records: self._put(records, version, chunk_index, data), False)

    def chunk_length(self, version: VersionKey, chunk_index: int) -> int:
        """How many bytes chunk `chunk_index` of this version holds (0 past the end)."""
        return max(0, min(self.chunk_size, version.size - chunk_index * self.chunk_size))

    @contextmanager
    def reading(self, version: VersionKey) -> Iterator[None]:
        """While inside, no chunk of `version` is evicted (for open files)."""
        self.pin(version)
        try:
            yield
        finally:
            self.unpin(version)

    def pin(self, version: VersionKey) -> None:
        """Keep the chunks of `version` from eviction until `unpin`. Never waits for the disk, so the
        event loop may call it."""
        with self._pins_lock:
            self._pins[version] = self._pins.get(version, 0) + 1

    def unpin(self, version: VersionKey) -> None:
        with self._pins_lock:
            if self._pins.get(version, 0) <= 1:
                self._pins.pop(version, None)
            else:
                self._pins[version] -= 1

    # -- space ---------------------------------------------------------------------------------

    def evict_if_needed(self, pinned: Collection[VersionKey] = (), *, incoming: int = 0) -> int:
        """Above a high watermark (counting `incoming` more bytes), evict least-recently-used chunks
        down to the low one, never chunks of `pinned` or of versions inside `reading()`. Returns
        the number evicted."""
        return self._guarded(lambda records: self._evict(records, pinned, incoming)[0], 0)

    def usage(self) -> CacheUsage:
        totals = self._guarded(self._totals, None)
        counters = self._counters
        return CacheUsage(
            bytes=totals.bytes if totals else 0,
            chunks=totals.chunks if totals else 0,
            versions=totals.versions if totals else 0,
            hits=counters.hits,
            misses=counters.misses,
            evictions=counters.evictions,
            not_cached_full=counters.not_cached_full,
            quarantined=counters.quarantined,
            mode="ok" if self._failure is None else "pass-through",
            reason=self._failure,
        )

    @property
    def mode(self) -> Mode:
        return "ok" if self._failure is None else "pass-through"

    # -- start-up, fsck, shutdown --------------------------------------------------------------

    def check(self, *, full: bool = False, progress: Progress | None = None) -> CheckReport:
        """Repair the cache: database quick_check, stray temp files, records without files, files
        without records, unreferenced chunks, and verification of a sample of chunks (all with
        `full`; `progress(done, total)` is told after each). For start-up and `fsck`; blocks other
        changes while it runs."""
        report = CheckReport()

        def check(records: CacheRecords) -> None:
            with self._lock:
                self._check(records, report, full, progress)

        self._guarded(check, None)
        report.failure = self._failure
        return report

    def close(self) -> None:
        """Write pending uses, checkpoint, and mark a clean shutdown; safe to call twice. Returns
        within `io_timeout` even on a hung disk (the next start then checks the cache fully)."""
        with self._state_lock:
            self._closed = True
        try:
            self._disk.call(self._close)
        except Stalled as exc:
            log.info("cache in %s closed without its last writes: the disk %s", self.cache_dir, exc)

    def _close(self) -> None:
        with self._lock:
            with self._state_lock:
                records, self._records = self._records, None
                self._epoch += 1
            self._close_given_up()
            if records is None:
                return
            try:
                self._flush_uses(records)
            except (OSError, sqlite3.Error):
                log.debug("could not store the last uses of cached chunks", exc_info=True)
            records.close()
            with suppress(OSError):
                (self.cache_dir / MARKER_NAME).unlink(missing_ok=True)

    # -- internals: opening and failing ----------------------------------------------------------

    def _open(self, *, first: bool) -> CacheRecords:
        """Open the folder and its database (the caller installs it)."""
        if not first:
            if not self._chunks.is_dir():
                raise _StorageFailure(f"{self._chunks} is missing")
            self._probe()
        for folder in (self._chunks, self._tmp, self._quarantine):
            folder.mkdir(exist_ok=True)
        marker = self.cache_dir / MARKER_NAME
        if marker.exists():
            self.unclean = True
        records = CacheRecords(self.cache_dir / DB_NAME, self.chunk_size, self.block_size)
        try:
            marker.touch()
            _fsync_folder(self.cache_dir)
            self._uses = _Uses(tick=records.last_tick())
            self._used_bytes = records.totals().bytes
        except BaseException:
            records.close()
            raise
        return records

    def _install(self, records: CacheRecords, epoch: int) -> bool:
        """Make `records` current, unless the store failed or closed since `epoch` (then they are
        given up, or closed if the store is)."""
        with self._state_lock:
            installed = self._epoch == epoch
            if installed:
                self._records = records
                self._failure = None
            elif not self._closed:
                self._given_up.append(records)
        if not installed and self._closed:
            with suppress(sqlite3.Error):
                records.close()
        return installed

    def _close_given_up(self) -> None:
        """Close databases of failed epochs (called where no call can be using them any more)."""
        with self._state_lock:
            given_up, self._given_up = self._given_up, []
        for records in given_up:
            with suppress(sqlite3.Error):
                records.close()

    def _probe(self) -> None:
        """Publish and remove an empty file the way a chunk is published: raises if that fails."""
        temp = self._tmp / f"probe-{secrets.token_hex(4)}"
        target = self._chunks / temp.name
        try:
            temp.write_bytes(b"")
            os.rename(temp, target)
            _fsync_folder(self._chunks)
        finally:
            _unlink_quietly(temp)
            _unlink_quietly(target)

    def _fail(self, exc: BaseException, epoch: int | None = None) -> None:
        """Turn pass-through for `exc`, unless it came from a call on the database of an older epoch
        than `epoch` (the store failed since; nothing to do). The database is given up, not closed:
        other calls may still be using it."""
        reason = _describe(exc)
        with self._state_lock:
            if epoch is not None and epoch != self._epoch:
                return
            first = self._failure is None
            self._failure = reason
            self._retry_at = self._clock() + self.retry_interval
            self._epoch += 1
            if self._records is not None:
                self._given_up.append(self._records)
                self._records = None
        if first:
            log.warning("content cache in %s disabled, reading origins directly: %s", self.cache_dir, reason)

    def _available(self) -> bool:
        """Whether the cache works; in pass-through, try to re-enable it once the interval is over
        (in a disk call: only when no call is stuck on the disk)."""
        if self._failure is None:
            return True
        if self._clock() < self._retry_at:
            return False
        with self._lock:
            with self._state_lock:
                if self._failure is None:
                    return True
                if self._clock() < self._retry_at:  # another call tried while this one waited
                    return False
                epoch = self._epoch
            self._close_given_up()
            records = None
            try:
                records = self._open(first=False)
                report = CheckReport()
                self._check(records, report, full=False)
            except (OSError, sqlite3.Error, _StorageFailure) as exc:
                log.debug("content cache in %s still unusable: %s", self.cache_dir, _describe(exc))
                with self._state_lock:
                    self._retry_at = self._clock() + self.retry_interval
                if records is not None:
                    with suppress(sqlite3.Error):
                        records.close()
                return False
            if not self._install(records, epoch):
                return False  # the disk failed again meanwhile (this attempt passed its deadline)
            log.warning("content cache in %s works again (%d repairs)", self.cache_dir, report.repairs)
            self.unclean = True  # the disk misbehaved: verify what it returns from now on
            return True

    def _guarded(self, action: Callable[[CacheRecords], T], fallback: T) -> T:
        """`action` on the current database in a disk call with a deadline; `fallback` while the
        cache is off, and when the disk fails or does not answer (then the cache turns off)."""
        if self._failure is not None and self._clock() < self._retry_at:
            return fallback  # pass-through: not even a thread hand-off
        try:
            return self._disk.call(partial(self._attempt, action, fallback))
        except Stalled as exc:
            self._fail(exc)
        return fallback

    def _attempt(self, action: Callable[[CacheRecords], T], fallback: T) -> T:
        """The body of a disk call (in a worker thread)."""
        if not self._available():
            return fallback
        with self._state_lock:
            records, epoch = self._records, self._epoch
        try:
            if records is None:
                raise _StorageFailure("the cache database is closed")
            return action(records)
        except (OSError, sqlite3.OperationalError, _StorageFailure) as exc:
            self._fail(exc, epoch)
        except sqlite3.DatabaseError as exc:
            if self._epoch != epoch:
                return fallback  # the database was given up under this call: its errors do not count
            if isinstance(exc, sqlite3.ProgrammingError | sqlite3.IntegrityError | sqlite3.InterfaceError):
                raise
            self._fail(exc, epoch)
        return fallback

    # -- internals: chunks -----------------------------------------------------------------------

    @property
    def _chunks(self) -> Path:
        return self.cache_dir / "chunks"

    @property
    def _tmp(self) -> Path:
        return self.cache_dir / "tmp"

    @property
    def _quarantine(self) -> Path:
        return self.cache_dir / "quarantine"

    def _path(self, digest: str) -> Path:
        return self._chunks / digest[:2] / digest

    def _read(
        self, records: CacheRecords, version: VersionKey, chunk_index: int, start: int, end: int
    ) -> bytes | None:
        found = records.lookup(version, chunk_index)
        if found is None:
            return None
        block = self.block_size
        first = start // block if found.checks is not None else 0
        low = first * block
        high = min(found.size, -(-end // block) * block) if found.checks is not None else found.size
        try:
            fd = os.open(self._path(found.digest), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self._chunks.is_dir():
                raise
            with self._lock:
                if not self._path(found.digest).exists():
                    log.warning("cached chunk %s vanished; forgetting it", found.digest)
                    records.drop([found.digest])
            return None
        try:
            data = os.pread(fd, high - low, low)
        finally:
            os.close(fd)
        if len(data) != high - low or not (
            blocks_intact(data, found.checks, first, block)
            if found.checks is not None
            else address_of(data) == found.digest
        ):
            with self._lock:
                self._quarantine_chunk(records, found.digest)
            return None
        if found.checks is None:
            records.set_checks(found.digest, checks_of(data, block))
        self._use(records, found.digest)
        return data[start - low : end - low]

    def _put(self, records: CacheRecords, version: VersionKey, chunk_index: int, data: bytes) -> bool:
        digest = address_of(data)
        with self._lock:
            if records.share(version, chunk_index, digest, self._next_tick()):
                return True
        if not self._evict(records, (), len(data))[1]:
            self._counters.not_cached_full += 1
            return False
        fault_point("cache.before_write")
        temp = self._write_temp(data)
        try:
            fault_point("cache.before_rename")
            with self._lock:
                target = self._path(digest)
                if not target.parent.is_dir():
                    target.parent.mkdir()
                    _fsync_folder(self._chunks)
                os.rename(temp, target)
                _fsync_folder(target.parent)
                fault_point("cache.before_record")
                checks = checks_of(data, self.block_size)
                if records.add(version, chunk_index, digest, len(data), checks, self._next_tick()):
                    self._used_bytes += len(data)
        finally:
            self._writing.discard(temp.name)
            _unlink_quietly(temp)
        return True

    def _write_temp(self, data: bytes) -> Path:
        name = f"{secrets.token_hex(8)}.part"
        self._writing.add(name)
        temp = self._tmp / name
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            self._writing.discard(name)
            _unlink_quietly(temp)
            raise
        return temp

    def _quarantine_chunk(self, records: CacheRecords, digest: str) -> None:
        """Move a chunk that failed verification aside and forget it (called under the lock)."""
        log.warning("cached chunk %s failed verification; quarantined", digest)
        source = self._path(digest)
        try:
            source.rename(self._quarantine / f"{time.time_ns()}-{digest}")
        except FileNotFoundError:
            pass
        except OSError:
            _unlink_quietly(source)
        records.drop([digest])
        self._counters.quarantined += 1
        kept = sorted(self._quarantine.iterdir())
        for old in kept[: max(0, len(kept) - QUARANTINE_KEEP)]:
            _unlink_quietly(old)

    # -- internals: uses and eviction ------------------------------------------------------------

    def _next_tick(self) -> int:
        with self._uses_lock:
            self._uses.tick += 1
            return self._uses.tick

    def _use(self, records: CacheRecords, digest: str) -> None:
        with self._uses_lock:
            self._uses.tick += 1
            self._uses.pending[digest] = self._uses.tick
            full = len(self._uses.pending) >= TOUCH_BATCH
        if full:
            self._flush_uses(records)

    def _totals(self, records: CacheRecords) -> Totals:
        self._flush_uses(records)
        return records.totals()

    def _flush_uses(self, records: CacheRecords) -> None:
        with self._uses_lock:
            pending, self._uses.pending = self._uses.pending, {}
        if pending:
            records.touch(pending)

    def _evict(
        self, records: CacheRecords, pinned: Collection[VersionKey], incoming: int
    ) -> tuple[int, bool]:
        """Evict as the watermarks ask: how many chunks went, and whether that made enough room."""
        need = excess(self.watermarks, self._used_bytes, self._disk_space(self.cache_dir), incoming)
        if not need:
            return 0, True
        self._flush_uses(records)
        with self._lock:
            with self._pins_lock:
                pinned_now = [*pinned, *self._pins]
            keep = records.hashes_of(pinned_now)
            victims = records.least_recently_used(need.bytes, need.files, keep)
            records.drop(digest for digest, _ in victims)
            for digest, size in victims:
                _unlink_quietly(self._path(digest))
                self._used_bytes -= size
        self._counters.evictions += len(victims)
        room = not excess(self.watermarks, self._used_bytes, self._disk_space(self.cache_dir), incoming)
        return len(victims), room

    # -- internals: check ------------------------------------------------------------------------

    def scrub(self, count: int) -> tuple[int, int]:
        """Verify up to `count` chunks chosen at random, outside the store lock (a background scrub);
        quarantine the bad ones. Returns (verified, quarantined)."""
        recorded = self._guarded(lambda records: records.chunks(), None)
        if not recorded:
            return 0, 0
        verified = bad = 0
        for digest in random.sample(sorted(recorded), min(count, len(recorded))):
            intact = self._guarded(partial(self._scrub_one, chunk=recorded[digest]), None)
            verified += intact is not None
            bad += intact is False
        return verified, bad

    def _scrub_one(self, records: CacheRecords, chunk: Recorded) -> bool | None:
        """Verify one chunk, quarantining it if bad; None if it is gone (evicted meanwhile). The lock
        is taken inside the guarded call, never around it: `_guarded` may retry a failed disk, which
        takes the lock itself."""
        path = self._path(chunk.digest)
        if not path.exists():
            return None
        if _intact(path, chunk, self.block_size):
            return True
        with self._lock:
            self._quarantine_chunk(records, chunk.digest)
        return False

    def _check(
        self, records: CacheRecords, report: CheckReport, full: bool, progress: Progress | None = None
    ) -> None:
        """The steps of `check` (called under the lock)."""
        self._flush_uses(records)
        report.database_set_aside = records.set_aside or not records.quick_check()
        records.set_aside = False
        for temp in self._tmp.iterdir():
            if temp.name not in self._writing:
                _unlink_quietly(temp)
                report.stray_temp_removed += 1
        files = self._chunk_files(report)
        recorded = records.chunks()
        for digest in files.keys() - recorded.keys():
            _unlink_quietly(files[digest])
            report.orphan_files_removed += 1
        missing = recorded.keys() - files.keys()
        records.drop(missing)
        report.missing_files_forgotten = len(missing)
        unreferenced = records.unreferenced()
        records.drop(unreferenced)
        for digest in unreferenced:
            _unlink_quietly(self._path(digest))
        report.unreferenced_removed = len(unreferenced)
        present = sorted(recorded.keys() & files.keys() - set(unreferenced))
        sample = present if full else random.sample(present, min(SAMPLE_SIZE, len(present)))
        for digest in sample:
            self._disk.progress()
            report.verified += 1
            if not _intact(self._path(digest), recorded[digest], self.block_size):
                self._quarantine_chunk(records, digest)
                report.corrupt_quarantined += 1
            if progress is not None:
                progress(report.verified, len(sample))
        self._used_bytes = records.totals().bytes

    def _chunk_files(self, report: CheckReport) -> dict[str, Path]:
        """Every chunk file by name; anything else under chunks/ is removed as an orphan."""
        files: dict[str, Path] = {}
        for folder in self._chunks.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                _unlink_quietly(folder)
                report.orphan_files_removed += 1
                continue
            self._disk.progress()
            for path in folder.iterdir():
                if _HASH_NAME.fullmatch(path.name) and path.name[:2] == folder.name and path.is_file():
                    files[path.name] = path
                else:
                    _unlink_quietly(path)
                    report.orphan_files_removed += 1
        return files


def _intact(path: Path, chunk: Recorded, block: int) -> bool:
    """Whether the whole chunk file holds what was recorded (its checksums, or else its SHA-256)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        if exc.errno == errno.EIO:
            return False
        raise
    if len(data) != chunk.size:
        return False
    return blocks_intact(data, chunk.checks, 0, block) if chunk.checks else address_of(data) == chunk.digest


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        pass
    except OSError as exc:
        log.debug("could not remove %s: %s", path, exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Stalled):
        return f"the cache disk {exc}"
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
        return f"ENOSPC: {exc} (cache database)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror} ({exc.filename or ''})"
    return f"{type(exc).__name__}: {exc}"
