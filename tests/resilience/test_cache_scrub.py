"""7.4 / 3.5 in-process: a scrub that finds a bad chunk while the cache disk is failing never
deadlocks (the scrub used to take the store lock, then re-enter it to retry the dying disk).

The timing is exact: the disk fails (a real EIO from the cache records, raised by a wrapper at the
one moment between the scrub's sample and its quarantine) and the retry interval has passed."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

import musicfs.cache.store as store_module
from musicfs.cache.space import DiskSpace, Watermarks
from musicfs.cache.store import ChunkStore, VersionKey

PLENTY = DiskSpace(total_bytes=1 << 40, free_bytes=1 << 39, total_inodes=1 << 30, free_inodes=1 << 29)


@pytest.mark.allow_log(r"disabled, reading origins directly: EIO", r"failed verification; quarantined")
@pytest.mark.failure_mode("3.5")
def test_a_scrub_on_a_dying_cache_disk_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    store = ChunkStore(
        tmp_path,
        watermarks=Watermarks(1 << 30, target_bytes_fraction=1.0),
        chunk_size=1024,
        retry_interval=5.0,
        clock=lambda: now[0],
        disk_space=lambda _path: PLENTY,
    )
    version = VersionKey(1, b"a.flac", 1024, 1, 2)
    assert store.put(version, 0, bytes(range(256)) * 4)
    (chunk,) = [p for p in (tmp_path / "chunks").rglob("*") if p.is_file()]
    chunk.write_bytes(b"\xff" + chunk.read_bytes()[1:])  # a flipped byte: the scrub must quarantine it
    real_intact = store_module._intact

    def disk_dies_during_the_check(path: Path, digest: str, size: int) -> bool:
        intact = real_intact(path, digest, size)
        store._fail(OSError(errno.EIO, "Input/output error"))  # the cache disk fails meanwhile
        now[0] += 10  # and the retry interval passes before the quarantine
        return intact

    monkeypatch.setattr(store_module, "_intact", disk_dies_during_the_check)
    result: list[tuple[int, int]] = []
    scrub = threading.Thread(target=lambda: result.append(store.scrub(4)), daemon=True)
    scrub.start()
    scrub.join(10)
    assert not scrub.is_alive(), "the scrub deadlocked on the store lock"
    assert result == [(1, 1)]
    store.close()
