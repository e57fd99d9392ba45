"""The one wrapper every FUSE handler goes through: domain errors to errno, surprises to EIO.

Owns: the mapping from exceptions to the errno a request is answered with; it records every request
in `musicfs.fs.stats.STATS` (count, latency, failures) and logs origin failures rate-limited, so an
offline origin gives one line per interval rather than one per read.
pyfuse3 only catches `FUSEError`; any other exception escaping a handler would stop
`pyfuse3.main()` and take the daemon down, so this wrapper makes sure every request gets an answer.
Every handler is also a fault point named "fs.<handler>" (for example "fs.read"), so the chaos tooling
can make any request fail unexpectedly.
Concurrency: handlers run as trio tasks on one thread; the counters are only touched there.
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from musicfs.core.errors import OriginError
from musicfs.core.faults import fault_point
from musicfs.fs.stats import STATS, RateLimitedLog

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_origin_failures = RateLimitedLog(log)


# Answers, not failures (ENOSYS: the opendir that asks for kernel-cached listings).
_ROUTINE = frozenset({errno.ENOENT, errno.ENODATA, errno.EROFS, errno.ENOSYS})


def fuse_handler(function: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make `function` answer every request: FUSEError passes, OriginError -> its errno, else EIO."""
    name = function.__name__
    point = f"fs.{name}"

    @functools.wraps(function)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            fault_point(point)
            return await function(*args, **kwargs)
        except pyfuse3.FUSEError as exc:
            if exc.errno not in _ROUTINE:
                STATS.failures[f"{name}:{errno.errorcode.get(exc.errno, exc.errno)}"] += 1
            raise
        except OriginError as exc:
            code = errno.errorcode.get(exc.errno, str(exc.errno))
            STATS.failures[f"{name}:{code}"] += 1
            _origin_failures.warning(f"{name}:{code}", "%s failed: %s", name, exc)
            raise pyfuse3.FUSEError(exc.errno) from None
        except Exception:
            STATS.failures[f"{name}:unexpected"] += 1
            log.exception("unexpected error in FUSE handler %s; answered EIO, still serving", name)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            STATS.observe(name, time.perf_counter() - started)

    return answer


async def read_only(*_args: Any, **_kwargs: Any) -> Any:
    """Every mutating call: the view is read-only."""
    raise pyfuse3.FUSEError(errno.EROFS)
