"""What every remote origin shares (issue 9): an `Origin` over a `RemoteStore` that lists, stats and
fetches byte ranges, whatever the protocol.

Owns: `RemoteOrigin` and the contract a protocol implements (`RemoteStore`, `RemoteFile`,
`Transient`, `Changed`). The store knows its protocol; this module knows MusicFS's rules:
  - walk: from the store's listing pages; hidden names (any part starting with '.') and folder
    markers skipped, kinds by `kind_of`, unusable names ('a//b', '..') refused and logged once;
    `FoundFile` with the size, mtime (whole seconds: every protocol's listing and stat agree on
    those), ctime = mtime, dev 0 and ino a stable number from the ETag, so a moved object (same
    content, same ETag) keeps its track and a changed one (new ETag) is read again;
  - handles: small integers naming (path, version at open); reads ask the store for exactly that
    version (If-Match), so a file replaced under a reader gives EIO, never a mix of two versions;
  - retries with backoff for these idempotent requests when the store says a failure is
    `Transient` (connection refused or reset, timeouts, 5xx, a cut body), within the read deadline;
    then `OriginUnavailable` (EIO), and for `COOL_DOWN` seconds every other request fails at once
    without asking the server (a scan over a dead server must not wait a deadline per file), unless
    a look at the root finds it answering again;
  - `open_stream`: a seekable stream over ranged reads (`musicfs.origins.ranged`), so tags are read
    without downloading whole files;
  - `unavailable_reason`: one look at the root (does it hold anything?) shared by every caller,
    under the caller's deadline (`musicfs.origins.probe`); empty while the index knows files of it
    is unavailable, as for a local folder.
A new protocol (SFTP, WebDAV) implements `RemoteStore` and gets all of that; its builder goes into
`musicfs.origins.factory`.
Concurrency: every method but `read_nowait` blocks on the network and runs in worker threads; the
handle table is behind a lock, the time of the last give-up is one value replaced whole; the store
must be safe to use from many threads at once.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import posixpath
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from musicfs.core.errors import OriginError, OriginUnavailable
from musicfs.core.kinds import kind_of
from musicfs.origins.base import DOES_NOT_ANSWER, FoundFile, ProblemLog, WalkProblems
from musicfs.origins.probe import NoAnswer, SharedProbe
from musicfs.origins.ranged import BLOCK_SIZE, RangedStream

log = logging.getLogger(__name__)

T = TypeVar("T")
PROBE_TIMEOUT = 10.0  # how long a look at the root may take before the origin counts as hung
ATTEMPTS = 4
BACKOFF = 0.1  # seconds before the first retry; doubled each time, with jitter
COOL_DOWN = 3.0  # seconds after a request gave up during which others fail at once
EMPTY_BUT_KNOWN = "nothing is stored under it, but the index knows files of it"


class Transient(OriginError):
    """A failure worth trying again: no connection, a reset or cut response, a timeout, a 5xx."""


class Changed(OriginError):
    """The file is not the version that was opened any more (replaced or rewritten since)."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of a store: its path below the origin's root, size, mtime (ns, whole seconds) and
    ETag (any string that changes whenever the content does)."""

    relpath: bytes
    size: int
    mtime_ns: int
    etag: str


class RemoteStore(Protocol):
    """One protocol's way to a remote folder. Errors are `OriginError`s: `Transient` when trying
    again may help, `OriginFileGone` for a file that is not there, `Changed` when `fetch` finds
    another version. Used from many threads at once."""

    url: str  # the origin's name: its URL without credentials

    def list_page(self, token: str | None) -> tuple[Sequence[RemoteFile], str | None]:
        """One page of the files below the root (any order) and the token of the next (None: the
        last page); `token` None asks for the first."""
        ...

    def stat(self, relpath: bytes) -> RemoteFile: ...

    def fetch(self, relpath: bytes, offset: int, length: int, etag: str) -> bytes:
        """Bytes `offset`..`offset + length` of version `etag` (fewer only if the body was cut)."""
        ...

    def fetch_first(self, relpath: bytes, length: int) -> tuple[RemoteFile, bytes]:
        """The file as it is now and its first `length` bytes (all of it when it is shorter): one
        request where the protocol allows, since a scan is bound by round trips."""
        ...

    def is_empty(self) -> bool:
        """Whether nothing at all is stored below the root; an OriginError when it cannot be told."""
        ...


class RemoteOrigin:
    """An origin served by a `RemoteStore`; `deadline` bounds the retries of one request."""

    supports_nowait = False

    def __init__(
        self, origin_id: int, store: RemoteStore, *, deadline: float, attempts: int = ATTEMPTS
    ) -> None:
        self.origin_id = origin_id
        self.store = store
        self.root = store.url.encode()
        self.deadline = deadline
        self.attempts = attempts
        self._handles: dict[int, RemoteFile] = {}
        self._next_handle = itertools.count(1)
        self._lock = threading.Lock()
        self._problems = ProblemLog()
        self._probe = SharedProbe(store.is_empty, f"musicfs-probe:{store.url}")
        self._gave_up_at: float | None = None  # when a request last gave up (monotonic)

    def __repr__(self) -> str:
        return f"RemoteOrigin({self.origin_id}, {self.store.url!r})"

    def abspath(self, relpath: bytes) -> bytes:
        return self.root + b"/" + relpath

    def unavailable_reason(
        self, knows_files: bool, timeout: float = PROBE_TIMEOUT, stop: threading.Event | None = None
    ) -> str | None:
        """Why the origin cannot be trusted now: the server does not answer within `timeout`, or says
        no (no such bucket, access denied), or nothing is stored under the root while the index knows
        files of it; None when it can."""
        try:
            empty = self._probe.ask(timeout, stop)
        except NoAnswer as exc:
            return f"{self.store.url}: {DOES_NOT_ANSWER} (a request has waited {exc.waited:.1f} s)"
        except OriginError as exc:
            return f"{self.store.url}: {exc}"
        self._gave_up_at = None  # it answers: requests may ask it again at once
        return f"{self.store.url}: {EMPTY_BUT_KNOWN}" if empty and knows_files else None

    def walk(self, problems: WalkProblems) -> Iterator[FoundFile]:
        """Every audio file and cover image of the listing; a listing that fails after its retries
        raises OriginUnavailable (the scan keeps what the index knows)."""
        complete = False
        try:
            page, token = self._retrying("listing", lambda: self.store.list_page(None))
            while True:
                for found in page:
                    shown = self._shown(found, problems)
                    if shown is not None:
                        yield shown
                if token is None:
                    break
                page, token = self._retrying("listing", partial(self.store.list_page, token))
            complete = True
        finally:
            self._problems.walk_ended(complete)

    def _shown(self, found: RemoteFile, problems: WalkProblems) -> FoundFile | None:
        parts = found.relpath.split(b"/")
        if found.relpath.endswith(b"/") or any(part.startswith(b".") for part in parts if part):
            return None  # a folder marker, or hidden
        kind = kind_of(parts[-1])
        if kind is None:
            return None
        if any(part in (b"", b".", b"..") for part in parts):
            problems.refused += 1
            name = os.fsdecode(self.abspath(found.relpath))
            self._problems.warn("name", found.relpath, "skipping %s: not a usable path", name)
            return None
        return FoundFile(
            found.relpath, kind, found.size, found.mtime_ns, found.mtime_ns, 0, ino_of(found.etag)
        )

    def open(self, relpath: bytes) -> int:
        found = self._retrying("stat", lambda: self.store.stat(relpath))
        with self._lock:
            handle = next(self._next_handle)
            self._handles[handle] = found
        return handle

    def open_stream(self, relpath: bytes) -> io.BufferedReader:
        """The file as a seekable stream whose first block came with its version (no stat first)."""

        def first() -> tuple[RemoteFile, bytes]:
            found, data = self.store.fetch_first(relpath, BLOCK_SIZE)
            if len(data) != min(BLOCK_SIZE, found.size):
                raise Transient(f"a response was cut after {len(data)} bytes")
            return found, data

        found, data = self._retrying("read", first)
        name = os.fsdecode(posixpath.basename(relpath))
        stream = RangedStream(found.size, partial(self._fetch, found), name, first=data)
        return io.BufferedReader(stream)

    def version_of(self, handle: int) -> tuple[int, int, int]:
        """The version the open found (its stat is how the file is now: the open just made it)."""
        found = self._file(handle)
        return found.size, found.mtime_ns, found.mtime_ns

    def read_nowait(self, handle: int, size: int, offset: int) -> None:
        return None  # every remote read waits for the network

    def read(self, handle: int, size: int, offset: int) -> bytes:
        return self._fetch(self._file(handle), offset, size)

    def close(self, handle: int) -> None:
        with self._lock:
            self._handles.pop(handle, None)

    def _file(self, handle: int) -> RemoteFile:
        with self._lock:
            found = self._handles.get(handle)
        if found is None:
            raise OriginError(f"{self.store.url}: handle {handle} is not open")
        return found

    def _fetch(self, found: RemoteFile, offset: int, size: int) -> bytes:
        """Exactly the bytes asked for (fewer only at the end of the file); a cut body is retried."""
        length = min(size, found.size - offset)
        if length <= 0:
            return b""

        def fetch() -> bytes:
            data = self.store.fetch(found.relpath, offset, length, found.etag)
            if len(data) != length:
                raise Transient(f"a response was cut after {len(data)} of {length} bytes")
            return data

        return self._retrying("read", fetch)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, tried again with backoff while it fails with Transient, for at most `attempts`
        tries within `deadline` seconds; then OriginUnavailable, also for every call within
        `COOL_DOWN` seconds after that."""
        started = time.monotonic()
        gave_up_at = self._gave_up_at
        if gave_up_at is not None and started - gave_up_at < COOL_DOWN:
            raise OriginUnavailable(f"{self.store.url}: not asked, it failed a moment ago")
        for attempt in itertools.count(1):
            try:
                result = call()
            except Transient as exc:
                delay = BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                if attempt >= self.attempts or time.monotonic() - started + delay > self.deadline:
                    self._gave_up_at = time.monotonic()
                    url = self.store.url
                    raise OriginUnavailable(f"{url}: {what} failed {attempt} times: {exc}") from None
                log.debug("%s: %s failed (%s); trying again in %.2f s", self.store.url, what, exc, delay)
                time.sleep(delay)
            else:
                self._gave_up_at = None
                return result
        raise AssertionError("unreachable")


def ino_of(etag: str) -> int:
    """A stable, positive 63-bit number for an ETag: the same content keeps it, a change changes it."""
    return int.from_bytes(hashlib.sha256(etag.encode()).digest()[:8], "big") >> 1
