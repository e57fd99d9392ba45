"""Progress of a scan: a tqdm bar on a terminal, a plain line every few seconds otherwise.

Owns: turning scanner progress callbacks into output, and keeping systemd patient during a long first
scan (EXTEND_TIMEOUT_USEC, 2.10).
Concurrency: the callback is called from the scanning thread only.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

from musicfs.daemon.notify import Notifier

log = logging.getLogger(__name__)

LINE_EVERY = 5.0
EXTEND_BY_USEC = 60_000_000


class ScanProgress:
    """A callable `(done, total)` progress sink, used as a context manager around a scan."""

    def __init__(self, stream: TextIO, notifier: Notifier | None) -> None:
        self._bar: tqdm | None = None
        self._interactive = stream.isatty()
        self._stream = stream
        self._notifier = notifier
        self._last = 0.0
        self._seen = (-1, -1)

    def __enter__(self) -> ScanProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()

    def __call__(self, done: int, total: int) -> None:
        if (done, total) == self._seen:
            return
        self._seen = (done, total)
        now = time.monotonic()
        if self._interactive:
            if self._bar is None:
                self._bar = tqdm(total=total, unit="file", desc="scanning", file=self._stream)
            self._bar.total = total
            self._bar.n = done
            self._bar.refresh()
        if now - self._last < LINE_EVERY and done < total:
            return
        self._last = now
        if not self._interactive:
            log.info("scanning: %d of %d files", done, total)
        if self._notifier is not None:
            self._notifier.send(
                f"EXTEND_TIMEOUT_USEC={EXTEND_BY_USEC}", f"STATUS=scanning: {done} of {total} files"
            )
