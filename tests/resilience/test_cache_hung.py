"""Issue 8.9 in-process: a chunk store whose cache disk stops answering. The cache folder is a real
bindfs mount, stopped with SIGSTOP by the test (its own process, by PID), so every request to it waits
as on a frozen disk. The store must wait one deadline, then pass through at once, hold a bounded
number of threads, open and close within its deadline, use the disk again once it answers, and never
keep its process from exiting (tests/process/test_frozen_cache.py does the same with the daemon)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.bindfs import Bindfs
from musicfs.cache.space import DiskSpace, Watermarks
from musicfs.cache.store import DISK_THREADS, ChunkStore, VersionKey

CHUNK = 64 * 1024
IO_TIMEOUT = 0.5
RETRY = 30.0
AT_ONCE = 0.2
PLENTY = DiskSpace(total_bytes=1 << 40, free_bytes=1 << 39, total_inodes=1 << 30, free_inodes=1 << 29)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Bindfs]:
    """A cache disk the test can freeze; thawed and unmounted at the end whatever happened."""
    (tmp_path / "disk").mkdir()
    mounted = Bindfs(tmp_path / "disk", tmp_path / "cache")
    try:
        yield mounted.start()
    finally:
        mounted.cleanup()


def _store(disk: Bindfs, clock: FakeClock) -> ChunkStore:
    return ChunkStore(
        disk.mountpoint,
        watermarks=Watermarks(1 << 30),
        chunk_size=CHUNK,
        retry_interval=RETRY,
        io_timeout=IO_TIMEOUT,
        clock=clock,
        disk_space=lambda _path: PLENTY,  # statvfs of a frozen FUSE mount would hang the test itself
    )


def _version(name: bytes) -> VersionKey:
    return VersionKey(1, name, 4 * CHUNK, 10, 20)


def _chunk(seed: int) -> bytes:
    return bytes([seed]) * CHUNK


def _cache_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "musicfs-cache")


def _timed(call: object) -> float:
    assert callable(call)
    started = time.monotonic()
    call()
    return time.monotonic() - started


@pytest.mark.allow_log(
    r"content cache in .* disabled, reading origins directly: the cache disk did not answer",
    r"content cache in .* works again",
)
@pytest.mark.failure_mode("cache-hung")
def test_a_frozen_cache_disk_costs_one_deadline_then_nothing(disk: Bindfs) -> None:
    clock = FakeClock()
    store = _store(disk, clock)
    assert store.put(_version(b"a"), 0, _chunk(1))
    threads_before = _cache_threads()

    disk.freeze()
    answers: list[bytes | None] = []
    readers = [
        threading.Thread(target=lambda: answers.append(store.get(_version(b"a"), 0))) for _ in range(20)
    ]
    started = time.monotonic()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(IO_TIMEOUT + 5)
    assert time.monotonic() - started < IO_TIMEOUT + 2, "20 readers of a frozen disk: one deadline in all"
    assert answers == [None] * 20  # misses: the reader goes to the origin
    assert store.mode == "pass-through"
    assert "did not answer" in (store.usage().reason or "")
    assert _cache_threads() - threads_before <= DISK_THREADS

    for call in (
        lambda: store.get(_version(b"a"), 0),
        lambda: store.put(_version(b"b"), 0, _chunk(2)),
        store.usage,
        store.evict_if_needed,
        store.check,
        lambda: store.scrub(4),
    ):
        assert _timed(call) < AT_ONCE, call
    clock.now += RETRY  # the retry interval passes while the disk is still frozen
    assert _timed(lambda: store.get(_version(b"a"), 0)) < AT_ONCE, "no retry while a call is stuck"
    assert _cache_threads() - threads_before <= DISK_THREADS

    disk.thaw()
    _wait_until_used_again(store, clock)
    assert store.get(_version(b"a"), 0) == _chunk(1)
    assert store.put(_version(b"b"), 0, _chunk(2))
    assert store.get(_version(b"b"), 0) == _chunk(2)
    store.close()


@pytest.mark.allow_log(
    r"content cache in .* disabled, reading origins directly: the cache disk did not answer",
    r"content cache in .* works again",
)
@pytest.mark.failure_mode("cache-hung")
def test_a_store_opened_on_a_frozen_disk_passes_through_until_it_answers(disk: Bindfs) -> None:
    clock = FakeClock()
    before = _store(disk, clock)
    assert before.put(_version(b"a"), 0, _chunk(1))
    before.close()

    disk.freeze()
    started = time.monotonic()
    store = _store(disk, clock)
    assert time.monotonic() - started < IO_TIMEOUT + 1
    assert store.mode == "pass-through"
    assert _timed(store.check) < AT_ONCE
    assert store.check().failure is not None

    disk.thaw()
    _wait_until_used_again(store, clock)  # the late open's database is given up, then reopened
    assert store.get(_version(b"a"), 0) == _chunk(1)

    disk.freeze()
    assert _timed(store.close) < IO_TIMEOUT + 1  # the exit is never held up by the cache


def _wait_until_used_again(store: ChunkStore, clock: FakeClock) -> None:
    """Let retry intervals pass until a cache call finds the disk working again (the stuck calls
    must have returned first)."""
    deadline = time.monotonic() + 10
    while store.mode != "ok":
        assert time.monotonic() < deadline, "the cache was not used again after the disk answered"
        clock.now += RETRY
        store.usage()
        time.sleep(0.05)


CHILD = """
import sys
from pathlib import Path
from musicfs.cache.space import DiskSpace, Watermarks
from musicfs.cache.store import ChunkStore, VersionKey
plenty = DiskSpace(1 << 40, 1 << 39, 1 << 30, 1 << 29)
store = ChunkStore(Path(sys.argv[1]), watermarks=Watermarks(1 << 30), chunk_size=65536, io_timeout=0.5,
                   disk_space=lambda _path: plenty)
version = VersionKey(1, b"a", 4 * 65536, 10, 20)
assert store.put(version, 0, bytes(65536))
print("written", flush=True)
sys.stdin.readline()  # the test freezes the disk now
assert not store.put(version, 1, bytes([1]) * 65536)
store.close()
print("closed", flush=True)
"""


@pytest.mark.failure_mode("cache-hung")
def test_a_process_whose_cache_disk_froze_exits_at_once(disk: Bindfs) -> None:
    """The database open on the frozen disk must not hold up the exit (a `-shm` file mapped from the
    disk did: the kernel writes its pages back when the process unmaps it, and waits for that)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(disk.mountpoint)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "written\n"
        disk.freeze()
        started = time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        try:
            code = child.wait(IO_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
    finally:
        disk.thaw()  # a child stuck in the kernel on the frozen disk can only end once it answers
        if child.poll() is None:
            child.kill()
        _, errors = child.communicate(timeout=30)
    assert code == 0, f"exit {code} after {took:.1f} s: {errors}"
    assert took < IO_TIMEOUT + 5
