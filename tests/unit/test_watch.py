"""Live-update detection: real inotify on temporary folders, driven by trio on a mock clock.

The mock clock (autojump) makes debouncing deterministic: inotify queues an event during the system
call that causes it, so by the time every task is blocked the watcher's descriptor is already readable,
and virtual time only moves on once the watcher has drained it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from musicfs.origins import watch
from musicfs.origins.fstype import filesystem_type, needs_polling
from musicfs.origins.inotify import IN_CREATE, IN_ISDIR, IN_Q_OVERFLOW, InotifyEvent, parse_events
from musicfs.origins.watch import ChangeBatch, InotifyWatcher

WAIT = 600.0  # virtual seconds: a missing batch fails at once in real time


def run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


async def batch_of(watcher: InotifyWatcher, debounce: float = 1.0, max_delay: float = 10.0) -> ChangeBatch:
    with trio.fail_after(WAIT):
        return await watcher.next_batch(debounce, max_delay)


async def assert_quiet(watcher: InotifyWatcher) -> None:
    with trio.move_on_after(WAIT) as scope:
        batch = await watcher.next_batch()
        pytest.fail(f"unexpected batch: {batch}")
    assert scope.cancelled_caught


def paths(*names: str) -> frozenset[bytes]:
    return frozenset(os.fsencode(name) for name in names)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    return root


@pytest.fixture
def make_watcher(origin: Path) -> Iterator[Callable[[], InotifyWatcher]]:
    """Start a watcher on `origin` (after the test has laid out what exists beforehand)."""
    started: list[InotifyWatcher] = []

    def start() -> InotifyWatcher:
        started.append(InotifyWatcher(os.fsencode(origin)))
        return started[-1]

    yield start
    for watcher in started:
        watcher.close()


# --- changes that show up -------------------------------------------------------------------------


def test_a_new_file_shows_up_in_one_batch(origin: Path, make_watcher: Callable[[], InotifyWatcher]) -> None:
    watcher = make_watcher()

    async def main() -> None:
        (origin / "song.flac").write_bytes(b"x" * 1000)
        batch = await batch_of(watcher)
        assert batch == ChangeBatch(paths("song.flac"))
        await assert_quiet(watcher)

    run(main)


def test_an_album_copied_into_a_new_folder_is_one_batch(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    watcher = make_watcher()
    album = origin / "Album"
    early = [f"{i:03} early.flac" for i in range(100)]
    late = [f"{i:03} late.flac" for i in range(100)]

    async def copy_album() -> None:
        album.mkdir()
        for name in early:  # before the watcher can have watched the new folder
            (album / name).write_bytes(b"x")
        await trio.sleep(0.3)
        assert b"Album" in watcher.watched_folders()
        for name in late:  # through the new folder's own watch
            (album / name).write_bytes(b"x")
        (album / "CD2").mkdir()
        (album / "CD2" / "01.flac").write_bytes(b"x")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(copy_album)
            batch = await batch_of(watcher, debounce=1.0)
        expected = {"Album", "Album/CD2", "Album/CD2/01.flac"} | {f"Album/{n}" for n in early + late}
        assert batch.paths == paths(*expected)
        assert watcher.watched_folders() == paths("", "Album", "Album/CD2")
        await assert_quiet(watcher)

    run(main)


def test_changes_closer_than_the_debounce_merge_and_a_pause_splits(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    watcher = make_watcher()

    async def write_slowly() -> None:
        for name, pause in (("a", 0.5), ("b", 0.5), ("c", 0.4), ("d", 3.6), ("e", 0.0)):
            (origin / f"{name}.flac").write_bytes(b"x")
            await trio.sleep(pause)

    async def main() -> None:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_slowly)
            first = await batch_of(watcher, debounce=1.0)
            assert trio.current_time() - start == pytest.approx(2.4)
            second = await batch_of(watcher, debounce=1.0)
            assert trio.current_time() - start == pytest.approx(6.0)
        assert first.paths == paths("a.flac", "b.flac", "c.flac", "d.flac")
        assert second.paths == paths("e.flac")

    run(main)


def test_a_copy_that_never_ends_still_publishes_after_max_delay(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    watcher = make_watcher()

    async def write_forever() -> None:
        for i in range(1000):
            (origin / f"{i:04}.flac").write_bytes(b"x")
            await trio.sleep(0.3)

    async def main() -> None:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_forever)
            first = await batch_of(watcher, debounce=1.0, max_delay=10.0)
            elapsed = trio.current_time() - start
            second = await batch_of(watcher, debounce=1.0, max_delay=10.0)
            nursery.cancel_scope.cancel()
        assert elapsed == pytest.approx(10.0)
        assert len(first.paths) == 34  # written at 0, 0.3, ... 9.9
        assert len(second.paths) == 34  # from 10.2 to 20.1
        assert not first.paths & second.paths

    run(main)


def test_a_retag_of_an_existing_file_shows_up(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    (origin / "Artist").mkdir()
    (origin / "Artist" / "written.flac").write_bytes(b"old tags")
    (origin / "Artist" / "touched.mp3").write_bytes(b"tags")
    watcher = make_watcher()

    async def main() -> None:
        with open(origin / "Artist" / "written.flac", "r+b") as handle:
            handle.write(b"new")
        os.utime(origin / "Artist" / "touched.mp3", ns=(1, 1))  # attributes only
        batch = await batch_of(watcher)
        assert batch.paths == paths("Artist/written.flac", "Artist/touched.mp3")

    run(main)


def test_files_renamed_in_within_and_out(
    origin: Path, tmp_path: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    outside = tmp_path / "outside.flac"
    outside.write_bytes(b"x")
    watcher = make_watcher()

    async def main() -> None:
        outside.rename(origin / "in.flac")
        assert (await batch_of(watcher)).paths == paths("in.flac")
        (origin / "in.flac").rename(origin / "renamed.flac")
        assert (await batch_of(watcher)).paths == paths("in.flac", "renamed.flac")
        (origin / "renamed.flac").rename(outside)
        assert (await batch_of(watcher)).paths == paths("renamed.flac")

    run(main)


def test_a_folder_moved_in_around_and_out(
    origin: Path, tmp_path: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    away = tmp_path / "away"
    (away / "Disc").mkdir(parents=True)
    (away / "Disc" / "01.flac").write_bytes(b"x")
    watcher = make_watcher()

    async def main() -> None:
        away.rename(origin / "Album")
        batch = await batch_of(watcher)
        assert batch.paths == paths("Album", "Album/Disc", "Album/Disc/01.flac")
        (origin / "Album").rename(origin / "Renamed")
        assert (await batch_of(watcher)).paths == paths(
            "Album", "Renamed", "Renamed/Disc", "Renamed/Disc/01.flac"
        )
        (origin / "Renamed" / "Disc" / "02.flac").write_bytes(b"x")
        assert (await batch_of(watcher)).paths == paths("Renamed/Disc/02.flac")
        assert watcher.watched_folders() == paths("", "Renamed", "Renamed/Disc")
        (origin / "Renamed").rename(away)
        assert (await batch_of(watcher)).paths == paths("Renamed")
        assert watcher.watched_folders() == paths("")
        (away / "Disc" / "03.flac").write_bytes(b"x")  # no longer ours
        await assert_quiet(watcher)

    run(main)


def test_deleted_files_and_folders(origin: Path, make_watcher: Callable[[], InotifyWatcher]) -> None:
    (origin / "Artist" / "Album").mkdir(parents=True)
    (origin / "Artist" / "Album" / "01.flac").write_bytes(b"x")
    (origin / "single.mp3").write_bytes(b"x")
    watcher = make_watcher()
    assert watcher.watched_folders() == paths("", "Artist", "Artist/Album")

    async def main() -> None:
        (origin / "single.mp3").unlink()
        assert (await batch_of(watcher)).paths == paths("single.mp3")
        shutil.rmtree(origin / "Artist")
        batch = await batch_of(watcher)
        assert batch.paths == paths("Artist", "Artist/Album", "Artist/Album/01.flac")
        assert not batch.root_gone
        assert watcher.watched_folders() == paths("")

    run(main)


def test_hidden_entries_are_ignored(origin: Path, make_watcher: Callable[[], InotifyWatcher]) -> None:
    (origin / ".stash").mkdir()
    watcher = make_watcher()
    assert watcher.watched_folders() == paths("")

    async def main() -> None:
        (origin / ".hidden.flac").write_bytes(b"x")
        (origin / ".stash" / "inside.flac").write_bytes(b"x")
        (origin / ".newdir").mkdir()
        (origin / ".newdir" / "inside.flac").write_bytes(b"x")
        await assert_quiet(watcher)
        (origin / ".song.flac.partial").write_bytes(b"x")  # how rsync copies: a hidden file, renamed
        (origin / ".song.flac.partial").rename(origin / "song.flac")
        assert (await batch_of(watcher)).paths == paths("song.flac")
        assert watcher.watched_folders() == paths("")

    run(main)


def test_changes_deep_in_an_existing_tree_and_undecodable_names(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    deep = origin / "A" / "B" / "C"
    deep.mkdir(parents=True)
    watcher = make_watcher()

    async def main() -> None:
        name = os.path.join(os.fsencode(deep), b"caf\xe9.flac")
        with open(name, "wb") as handle:
            handle.write(b"x")
        assert (await batch_of(watcher)).paths == {b"A/B/C/caf\xe9.flac"}

    run(main)


# --- the root itself ------------------------------------------------------------------------------


def test_the_root_renamed_away_is_reported(
    origin: Path, tmp_path: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    (origin / "Album").mkdir()
    watcher = make_watcher()

    async def main() -> None:
        origin.rename(tmp_path / "elsewhere")
        batch = await batch_of(watcher)
        assert batch.root_gone
        assert watcher.watched_folders() == frozenset()
        assert (await batch_of(watcher)).root_gone  # at once, every time

    run(main)


def test_the_root_deleted_is_reported(origin: Path, make_watcher: Callable[[], InotifyWatcher]) -> None:
    (origin / "Album").mkdir()
    (origin / "Album" / "01.flac").write_bytes(b"x")
    watcher = make_watcher()

    async def main() -> None:
        shutil.rmtree(origin)
        assert (await batch_of(watcher)).root_gone

    run(main)


def test_a_missing_root_cannot_be_watched(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        InotifyWatcher(os.fsencode(tmp_path / "missing"))
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        InotifyWatcher(os.fsencode(tmp_path / "file"))


# --- symlinks -------------------------------------------------------------------------------------


def test_symlinked_folders_are_followed_and_loops_watched_once(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    store = origin / ".store"  # hidden: reached only through the symlink
    store.mkdir()
    (origin / "ext").symlink_to(store)
    (origin / "Album").mkdir()
    (origin / "Album" / "loop").symlink_to(origin)
    watcher = make_watcher()
    assert watcher.watched_folders() == paths("", "ext", "Album")

    async def main() -> None:
        (store / "song.flac").write_bytes(b"x")
        assert (await batch_of(watcher)).paths == paths("ext/song.flac")

    run(main)


@pytest.mark.failure_mode("7.2")
def test_symlinks_leading_out_of_the_origin_are_never_watched(
    origin: Path, tmp_path: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (origin / "out").symlink_to(outside)
    (origin / "everything").symlink_to("/")
    watcher = make_watcher()
    assert watcher.watched_folders() == paths("")

    async def main() -> None:
        (origin / "later").symlink_to(outside)  # planted while watched
        assert (await batch_of(watcher)).paths == paths("later")
        assert watcher.watched_folders() == paths("")
        (outside / "song.flac").write_bytes(b"x")
        await assert_quiet(watcher)

    run(main)


def test_losing_the_first_path_to_a_folder_rebuilds_the_watches(
    origin: Path, tmp_path: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    real = origin / ".real"  # hidden: reached only through the symlinks
    real.mkdir()
    (origin / "first").symlink_to(real)
    watcher = make_watcher()

    async def main() -> None:
        (origin / "second").symlink_to(real)  # the folder watched as "first" is also "second"
        assert (await batch_of(watcher)).paths == paths("second")
        assert watcher.watched_folders() == paths("", "first")
        (origin / "first").unlink()
        batch = await batch_of(watcher)
        assert batch.overflow
        assert watcher.watched_folders() == paths("", "second")
        (real / "song.flac").write_bytes(b"x")
        assert (await batch_of(watcher)).paths == paths("second/song.flac")

    run(main)


# --- event buffers and overflow -------------------------------------------------------------------


def event_bytes(wd: int, mask: int, cookie: int = 0, name: bytes = b"") -> bytes:
    padded = name + b"\0" * (-len(name) % 16 or (16 if name else 0))
    return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded


def test_event_buffers_are_parsed() -> None:
    buffer = event_bytes(3, IN_CREATE | IN_ISDIR, 0, b"Album") + event_bytes(-1, IN_Q_OVERFLOW)
    buffer += event_bytes(1, IN_CREATE, 7, b"x" * 16)
    assert parse_events(buffer) == [
        InotifyEvent(3, IN_CREATE | IN_ISDIR, 0, b"Album"),
        InotifyEvent(-1, IN_Q_OVERFLOW, 0, b""),
        InotifyEvent(1, IN_CREATE, 7, b"x" * 16),
    ]
    with pytest.raises(ValueError):
        parse_events(buffer[:-1])
    with pytest.raises(ValueError):
        parse_events(buffer[:10])


def test_an_overflow_asks_for_a_rescan_and_rebuilds_the_watches(
    origin: Path, make_watcher: Callable[[], InotifyWatcher]
) -> None:
    (origin / "Album").mkdir()
    watcher = make_watcher()

    async def main() -> None:
        (origin / "Album" / "lost.flac").write_bytes(b"x")  # queued on the descriptor thrown away
        (origin / "New").mkdir()  # a folder whose creation the lost events would have told
        batch = watcher.apply_events(parse_events(event_bytes(-1, IN_Q_OVERFLOW)))
        assert batch == ChangeBatch(overflow=True)
        assert watcher.watched_folders() == paths("", "Album", "New")
        await assert_quiet(watcher)
        (origin / "New" / "song.flac").write_bytes(b"x")
        assert (await batch_of(watcher)).paths == paths("New/song.flac")

    run(main)


# --- the watch limit ------------------------------------------------------------------------------


@pytest.mark.allow_log(r"inotify watch limit reached")
def test_the_watch_limit_is_reported_once(
    origin: Path,
    make_watcher: Callable[[], InotifyWatcher],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_add_watch = watch.add_watch

    def limited(fd: int, path: bytes, mask: int) -> int:
        if os.path.basename(path) == b"full":  # as if fs.inotify.max_user_watches were reached here
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_add_watch(fd, path, mask)

    monkeypatch.setattr(watch, "add_watch", limited)
    (origin / "ok").mkdir()
    (origin / "full").mkdir()
    with caplog.at_level(logging.WARNING, logger="musicfs.origins.watch"):
        watcher = make_watcher()
        assert not watcher.covers_tree
        assert watcher.watched_folders() == paths("", "ok")

        async def main() -> None:
            assert await batch_of(watcher) == ChangeBatch(incomplete=True)  # at once
            (origin / "more" / "full").mkdir(parents=True)
            batch = await batch_of(watcher)
            assert batch == ChangeBatch(paths("more", "more/full"), incomplete=True)

        run(main)
    assert len([r for r in caplog.records if "watch limit" in r.getMessage()]) == 1


# --- lifetime -------------------------------------------------------------------------------------


def test_close_releases_the_descriptor(origin: Path) -> None:
    with InotifyWatcher(os.fsencode(origin)) as watcher:
        fd = watcher._fd
        assert not watcher.closed
    assert watcher.closed
    with pytest.raises(OSError) as caught:
        os.fstat(fd)
    assert caught.value.errno == errno.EBADF
    watcher.close()  # twice is fine
    with pytest.raises(ValueError):
        watcher.read_events()


def test_close_from_another_task_wakes_the_waiting_one(origin: Path) -> None:
    watcher = InotifyWatcher(os.fsencode(origin))

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def close_soon() -> None:
                await trio.sleep(1)
                watcher.close()

            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError):
                await watcher.next_batch()

    try:
        run(main)
    finally:
        watcher.close()


# --- which origins are polled ---------------------------------------------------------------------


def test_a_local_folder_is_watched_not_polled(tmp_path: Path) -> None:
    assert filesystem_type(os.fsencode(tmp_path)) is not None
    assert not needs_polling(os.fsencode(tmp_path))


@pytest.fixture
def mountinfo(tmp_path: Path) -> bytes:
    base = os.fsencode(tmp_path.resolve())
    lines = [
        b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        b"30 22 0:50 / BASE/nas rw,relatime shared:9 - nfs4 server:/music rw,vers=4.2",
        b"31 22 0:51 / BASE/smb rw - cifs //server/music rw",
        b"32 22 0:52 / BASE/ssh rw,nosuid - fuse.sshfs me@host:/music rw,user_id=0",
        b"33 30 8:2 / BASE/nas/local rw - ext4 /dev/sdb1 rw",
        b"34 22 0:53 / BASE/nasty rw - tmpfs tmpfs rw",
        b"35 22 0:54 / BASE/my\\040share rw - smb3 //server/share rw",
        b"36 22 0:55 / BASE/stacked rw - nfs server:/old rw",
        b"37 36 0:56 / BASE/stacked rw - overlay overlay rw",
        b"38 22 0:57 / BASE/rclone rw - fuse.rclone remote: rw",
        b"39 22 0:58 / BASE/gluster rw - fuse.glusterfs host:/vol rw",
        b"not a mountinfo line",
    ]
    return b"\n".join(line.replace(b"BASE", base) for line in lines) + b"\n"


@pytest.mark.parametrize(
    ("where", "polled"),
    [
        ("nas/music", True),
        ("nas", True),
        ("smb/A/B", True),
        ("ssh/music", True),
        ("my share/music", True),
        ("rclone", True),
        ("gluster/x", True),
        ("nas/local/music", False),  # a local disk mounted inside the NFS share
        ("nasty/music", False),  # not inside "nas", but inside "nasty"
        ("nas-old/music", False),  # not inside "nas": on the root filesystem
        ("stacked/music", False),  # the overlay mounted on top is what shows
        ("plain", False),
    ],
)
def test_network_and_fuse_filesystems_are_polled(
    tmp_path: Path, mountinfo: bytes, where: str, polled: bool
) -> None:
    assert needs_polling(os.fsencode(tmp_path / where), mountinfo) is polled


def test_the_real_path_decides(tmp_path: Path, mountinfo: bytes) -> None:
    (tmp_path / "nas" / "music").mkdir(parents=True)
    (tmp_path / "shortcut").symlink_to(tmp_path / "nas" / "music")
    assert filesystem_type(os.fsencode(tmp_path / "shortcut"), mountinfo) == "nfs4"
    assert needs_polling(os.fsencode(tmp_path / "shortcut"), mountinfo)


def test_an_unknown_filesystem_is_polled() -> None:
    assert filesystem_type(b"/srv/music", b"") is None
    assert needs_polling(b"/srv/music", b"")
