"""Progress of a long step (a scan, a cache check): a bar redrawn in place on a terminal, plain lines
every few seconds anywhere else.

Owns: turning `(done, total)` callbacks into output, and keeping systemd patient during a long first
scan (EXTEND_TIMEOUT_USEC, 2.10). On a terminal that can redraw (`musicfs.daemon.terminal.redraws`)
a tqdm bar shows the count, the share done, the rate and the time left on one row; log records
written meanwhile go above it (tqdm's logging redirect, so a warning never lands inside the bar),
and once the step is done (or ends otherwise) the bar is erased: the step's own summary line then
takes its row. Anywhere
else (a pipe, a file, the journal, TERM=dumb) a plain log line every LINE_EVERY seconds and at the
end, without any control character.
Concurrency: the callback is called from one thread at a time (the one doing the step); log records
of other threads go through tqdm's lock while the bar is up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from musicfs.daemon.notify import Notifier
from musicfs.daemon.terminal import redraws

log = logging.getLogger(__name__)

LINE_EVERY = 5.0
EXTEND_BY_USEC = 60_000_000


class Progress:
    """A callable `(done, total)` progress sink of a step called `what` that counts `unit`s (singular:
    "file"), used as a context manager around the step."""

    def __init__(self, stream: TextIO, what: str, unit: str, notifier: Notifier | None = None) -> None:
        self._stream = stream
        self._what = what
        self._unit = unit
        self._notifier = notifier
        self._redraws = redraws(stream)
        self._bar: tqdm | None = None
        self._redirect = contextlib.ExitStack()
        self._last = 0.0
        self._seen = (-1, -1)

    def __enter__(self) -> Progress:
        if self._redraws:
            self._redirect.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_bar()
        self._redirect.close()

    def __call__(self, done: int, total: int) -> None:
        if (done, total) == self._seen:
            return
        self._seen = (done, total)
        if self._redraws:
            self._draw(done, total)
            if done >= total:
                self._close_bar()
        now = time.monotonic()
        if now - self._last < LINE_EVERY and done < total:
            return
        self._last = now
        line = f"{self._what}: {done} of {total} {self._unit}s"
        if not self._redraws:
            log.info("%s", line)
        if self._notifier is not None:
            self._notifier.send(f"EXTEND_TIMEOUT_USEC={EXTEND_BY_USEC}", f"STATUS={line}")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()  # erased (leave=False): the summary that follows takes its row
            self._bar = None

    def _draw(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=total,
                initial=done,  # the rate counts from here, not from an instant jump to `done`
                unit=self._unit,
                desc=self._what,
                file=self._stream,
                leave=False,
                dynamic_ncols=True,  # the terminal's width at every redraw, also after a resize
            )
            return
        if total != self._bar.total or done < self._bar.n:  # the next origin of a scan
            self._bar.reset(total=total)
        self._bar.update(done - self._bar.n)
