"""What every origin is to the rest of MusicFS: the `Origin` protocol and the values it hands out.

Owns: `Origin` (the operations the scanner, the gateway, the health checks and the start-up use:
walk, open, positional reads, the check whether the origin can be trusted now), `FoundFile` (a file
a walk found, with what identifies its version), `WalkProblems` (what a walk had to pass over, and
which paths it could not look into) and `ProblemLog` (walk problems logged once). A local folder
(`musicfs.origins.local.LocalOrigin`) is one implementation; every origin, local or remote, keeps
the same contract: it is only ever read, never written.
Concurrency: every blocking method may hang on a dead origin; callers run them in worker threads
with deadlines (`musicfs.origins.gateway`), except `read_nowait` (never waits) and
`unavailable_reason` (keeps its own deadline). Implementations are shared between threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

log = logging.getLogger(__name__)

DOES_NOT_ANSWER = "does not answer"
EMPTY_BUT_KNOWN = "its folder is empty but the index knows files in it (not mounted?)"


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A file found by a walk: where it is (relative, bytes), what identifies its version, and whether
    its path goes through a symlink (`linked`; dev and ino are then those of the file it leads to)."""

    relpath: bytes
    kind: str
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    linked: bool = False


@dataclass(slots=True)
class WalkProblems:
    """What a walk had to pass over (each problem is logged once, see `ProblemLog`)."""

    unreadable: int = 0
    loops: int = 0
    refused: int = 0  # symlinks leading out, files others may not read, FIFOs and other non-files
    # Paths that could not be listed or stat'ed: what the index knows at or below them is not gone,
    # only out of reach for now (a dead share mounted inside the origin, a permissions hiccup).
    unreachable: list[bytes] = field(default_factory=list)

    def reaches(self, relpath: bytes) -> bool:
        """False when `relpath` is at or below a path this walk could not look into."""
        return not any(not p or relpath == p or relpath.startswith(p + b"/") for p in self.unreachable)


class ProblemLog:
    """Walk problems, logged at WARNING the first time they are met and at DEBUG while they last.

    A problem is forgotten once a complete walk no longer meets it, so it is logged again if it comes
    back. Not thread-safe: only the (single) running walk uses it.
    """

    def __init__(self) -> None:
        self._reported: set[tuple[str, bytes]] = set()
        self._current: set[tuple[str, bytes]] = set()

    def warn(self, kind: str, relpath: bytes, message: str, *args: object) -> None:
        key = (kind, relpath)
        self._current.add(key)
        log.log(logging.DEBUG if key in self._reported else logging.WARNING, message, *args)

    def walk_ended(self, complete: bool) -> None:
        """A complete walk met every problem there is; an interrupted one keeps the old ones too."""
        self._reported = self._current if complete else self._reported | self._current
        self._current = set()


class Origin(Protocol):
    """A place music is read from. Paths are bytes, relative to the origin's root."""

    origin_id: int
    root: bytes  # how the origin is named: a local folder's path, a remote origin's URL (no secrets)
    supports_nowait: bool  # whether `read_nowait` can ever answer (False: every read takes a thread)

    def unavailable_reason(
        self, knows_files: bool, timeout: float = ..., stop: threading.Event | None = None
    ) -> str | None:
        """Why the origin cannot be trusted to show its files now (gone, hung, empty while the index
        knows files in it), or None; answers within `timeout` whatever the origin does."""
        ...

    def walk(self, problems: WalkProblems) -> Iterator[FoundFile]:
        """Every audio file and cover image that may be served; problems counted, never raised."""
        ...

    def abspath(self, relpath: bytes) -> bytes:
        """Where the file really is, for log lines and `user.musicfs.origin`."""
        ...

    def open(self, relpath: bytes) -> int:
        """A handle for `read`; raises an `OriginError` (OriginFileGone when it is not there)."""
        ...

    def open_stream(self, relpath: bytes) -> BinaryIO:
        """The file as a seekable binary stream (for tag readers)."""
        ...

    def version_of(self, handle: int) -> tuple[int, int, int]:
        """(size, mtime_ns, ctime_ns) of the file a handle reads, as it is now."""
        ...

    def read_nowait(self, handle: int, size: int, offset: int) -> bytes | bytearray | None:
        """The bytes only when they can be had without waiting (page cache); else None."""
        ...

    def read(self, handle: int, size: int, offset: int) -> bytes:
        """`size` bytes at `offset` (fewer only at the end of the file), however long it takes."""
        ...

    def close(self, handle: int) -> None: ...
