"""`musicfs metrics`: the daemon's counters in Prometheus text format (version 0.0.4).

Owns: rendering request counts, latency histograms, failures, task restarts, origin health, tracks,
open descriptors and resident memory as metric families.
Concurrency: a pure function of the values it is given; called on the trio thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from musicfs.daemon.resources import Resources
from musicfs.daemon.supervisor import TaskStatus
from musicfs.fs.stats import LATENCY_BUCKETS, RequestStats


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


@dataclass(frozen=True, slots=True)
class OriginCounters:
    """How one origin's reads were served: inline from the page cache, in a worker thread, or not
    at all because they passed their deadline."""

    up: bool
    inline_reads: int
    thread_reads: int
    timeouts: int


def render(
    stats: RequestStats,
    tasks: Iterable[TaskStatus],
    origins: Mapping[str, OriginCounters],
    tracks: int,
    resources: Resources,
    cache: Mapping[str, Any] | None = None,
) -> str:
    """The exposition text for one scrape (`cache`: the chunk store's usage, when there is one)."""
    lines = _family("musicfs_requests_total", "counter", "FUSE requests answered, by operation.")
    lines += [f'musicfs_requests_total{{op="{op}"}} {n}' for op, n in sorted(stats.requests.items())]
    lines += _family("musicfs_request_errors_total", "counter", "FUSE requests answered with an error.")
    for key, count in sorted(stats.failures.items()):
        op, _, error = key.partition(":")
        lines.append(f'musicfs_request_errors_total{{op="{op}",error="{_escape(error)}"}} {count}')
    lines += _family("musicfs_request_seconds", "histogram", "Time to answer a FUSE request.")
    for op, counts in sorted(stats.buckets.items()):
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'musicfs_request_seconds_bucket{{op="{op}",le="{le}"}} {cumulative}')
        lines.append(f'musicfs_request_seconds_sum{{op="{op}"}} {stats.seconds.get(op, 0.0):.6f}')
        lines.append(f'musicfs_request_seconds_count{{op="{op}"}} {cumulative}')
    lines += _family("musicfs_task_restarts_total", "counter", "Restarts of supervised background tasks.")
    task_list = list(tasks)
    lines += [f'musicfs_task_restarts_total{{task="{t.name}"}} {t.restarts}' for t in task_list]
    lines += _family("musicfs_task_failed", "gauge", "1 when a background task gave up after a crash loop.")
    lines += [f'musicfs_task_failed{{task="{t.name}"}} {int(t.state == "failed")}' for t in task_list]
    lines += _family("musicfs_origin_up", "gauge", "1 when the origin answered its last check.")
    lines += [
        f'musicfs_origin_up{{origin="{_escape(path)}"}} {int(o.up)}' for path, o in sorted(origins.items())
    ]
    lines += _family("musicfs_origin_reads_total", "counter", "Origin reads, by how they were served.")
    for path, o in sorted(origins.items()):
        for how, count in (("page_cache", o.inline_reads), ("thread", o.thread_reads)):
            lines.append(f'musicfs_origin_reads_total{{origin="{_escape(path)}",served="{how}"}} {count}')
    lines += _family(
        "musicfs_origin_timeouts_total", "counter", "Origin operations that passed their deadline."
    )
    lines += [
        f'musicfs_origin_timeouts_total{{origin="{_escape(path)}"}} {o.timeouts}'
        for path, o in sorted(origins.items())
    ]
    lines += _family("musicfs_tracks", "gauge", "Files shown in the mount.")
    lines.append(f"musicfs_tracks {tracks}")
    lines += _family("musicfs_open_fds", "gauge", "Open file descriptors of the daemon.")
    lines.append(f"musicfs_open_fds {resources.open_fds}")
    lines += _family("musicfs_fd_limit", "gauge", "Soft limit on open file descriptors.")
    lines.append(f"musicfs_fd_limit {resources.fd_limit}")
    lines += _family("musicfs_resident_memory_bytes", "gauge", "Resident memory of the daemon.")
    lines.append(f"musicfs_resident_memory_bytes {resources.rss_bytes}")
    if resources.memory_limit is not None:
        lines += _family("musicfs_memory_limit_bytes", "gauge", "Memory limit of the daemon's cgroup.")
        lines.append(f"musicfs_memory_limit_bytes {resources.memory_limit}")
    if cache is not None:
        lines += _cache_lines(cache)
    return "\n".join(lines) + "\n"


def _cache_lines(cache: Mapping[str, Any]) -> list[str]:
    lines = _family(
        "musicfs_cache_passthrough", "gauge", "1 while the cache is off (its disk full or broken)."
    )
    lines.append(f"musicfs_cache_passthrough {int(cache.get('mode') != 'ok')}")
    for key, kind, text in (
        ("bytes", "gauge", "Bytes of cached chunks."),
        ("chunks", "gauge", "Cached chunks."),
        ("hits", "counter", "Chunk reads served by the cache."),
        ("misses", "counter", "Chunk reads the cache could not serve."),
        ("evictions", "counter", "Chunks evicted to stay under the watermarks."),
        ("quarantined", "counter", "Chunks that failed verification and were set aside."),
    ):
        if key in cache:
            name = f"musicfs_cache_{key}" + ("_total" if kind == "counter" else "")
            lines += _family(name, kind, text)
            lines.append(f"{name} {cache[key]}")
    return lines
