"""The library service: origins + index + layout, producing and publishing tree snapshots.

Owns: the current `Tree` (`Library.tree`), loading it from the index at start, rescanning the origins,
recomputing the layout when tracks or the template change, and publishing a new snapshot with one
reference swap. It knows nothing of FUSE.
What it is given when built, never set on it afterwards: the shared `OriginStates` (a scan records
there which origins it found unavailable or back), the stop flag a scan watches (set when the
daemon stops, so a long scan ends at its next batch boundary), and how origins are built (the chaos
launcher passes a wrapper that injects faults; `musicfs mount` never does).
Concurrency: `tree` may be read from any thread at any time and is always a complete snapshot.
`load` and `rescan` do blocking I/O and run in a worker thread; `_update_lock` lets only one of them
run at a time. A failure anywhere before the swap leaves the published tree as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import threading
from collections.abc import Callable, Iterable

from musicfs.core.config import Config
from musicfs.core.faults import fault_point
from musicfs.core.kinds import AUDIO
from musicfs.core.types import Progress, TagSet, TrackEntry
from musicfs.index.links import one_path_per_track
from musicfs.index.scanner import ScanReport, scan_origin
from musicfs.index.schema import SCHEMA_VERSION
from musicfs.index.store import Index, IndexedFile
from musicfs.origins.base import Origin
from musicfs.origins.factory import build_origin
from musicfs.origins.states import OriginStates
from musicfs.tree.covers import cover_aliases
from musicfs.tree.layout import Album, albums, layout
from musicfs.tree.sanitize import sanitize_component
from musicfs.tree.snapshot import Tree
from musicfs.tree.template import Template

log = logging.getLogger(__name__)

LAYOUT_VERSION = 4  # bump when the layout rules change, so stored layouts are recomputed
PublishListener = Callable[[Tree, Tree], None]
OriginWrapper = Callable[[Origin], Origin]


def _as_built(origin: Origin) -> Origin:
    return origin


class Library:
    """The music library as configured: its origins, its index and the tree currently shown."""

    def __init__(
        self,
        config: Config,
        index: Index,
        *,
        states: OriginStates | None = None,
        stopping: threading.Event | None = None,
        wrap_origin: OriginWrapper = _as_built,
    ) -> None:
        self.index = index
        self.template = Template.parse(config.template)
        self.origins = [
            wrap_origin(build_origin(config, setting, index.origin_id(setting.root)))
            for setting in config.origins
        ]
        self.priority = {origin.origin_id: rank for rank, origin in enumerate(self.origins)}
        self.tree = Tree.empty()
        self.listeners: list[PublishListener] = []
        self.states = states if states is not None else OriginStates()
        self.stopping = stopping if stopping is not None else threading.Event()
        self._update_lock = threading.Lock()
        self._unpublished = False  # the index holds a layout the published tree does not show yet
        key_source = repr((config.template, [o.root for o in self.origins], SCHEMA_VERSION, LAYOUT_VERSION))
        self._layout_key = hashlib.sha256(key_source.encode("utf-8", "surrogateescape")).hexdigest()

    def load(self) -> Tree:
        """Publish the tree stored in the index (recomputing the layout first only if it is stale)."""
        with self._update_lock:
            if self.index.get_meta("layout_key") != self._layout_key:
                self._relayout()
            return self._publish()

    def rescan(self, progress: Progress | None = None) -> list[ScanReport]:
        """Scan every origin; if anything changed, recompute the layout and publish a new tree."""
        with self._update_lock:
            fault_point("rescan.start")
            reports = [scan_origin(self.index, origin, progress, self.stopping) for origin in self.origins]
            for origin, report in zip(self.origins, reports, strict=True):
                log.info("scan of %s", report.summary())
                if report.unavailable:
                    self.states.set_offline(origin.origin_id, report.unavailable)
                else:
                    self.states.set_online(origin.origin_id)
            if any(r.changes for r in reports) or self.index.get_meta("layout_key") != self._layout_key:
                self._unpublished = True
                self._relayout()
            if self._unpublished:
                self._publish()
            return reports

    def quiesce(self, timeout: float) -> bool:
        """Ask a running rescan to stop (the stop flag) and wait up to `timeout` s for it; True if none
        is running."""
        self.stopping.set()
        if self._update_lock.acquire(timeout=timeout):
            self._update_lock.release()
            return True
        log.warning("a rescan did not stop within %g s; closing the index anyway", timeout)
        return False

    def albums(self) -> dict[int, Album]:
        """What the layout decided for each shown track's album, by inode (`musicfs tree --albums`)."""
        files = one_path_per_track(self.index.indexed_files(self.priority))
        entries = (_entry(f, self.priority[f.origin_id]) for f in files if f.kind == AUDIO)
        return albums(entries, self.template)

    def _relayout(self) -> None:
        files = self.index.indexed_files(self.priority)
        shown = one_path_per_track(files)
        placed = layout(
            (_entry(f, self.priority[f.origin_id]) for f in shown if f.kind == AUDIO), self.template
        )
        viewpaths: dict[int, bytes | None] = {f.inode: None for f in files}
        viewpaths.update((inode, "/".join(parts).encode()) for inode, parts in placed.items())
        _place_covers(shown, viewpaths)
        fault_point("layout.save")
        self.index.save_layout(viewpaths, _folders(viewpaths.values()), self._layout_key)

    def _publish(self) -> Tree:
        files, folders = self.index.view(self.priority)
        tracks = [f for f in files if f.kind == AUDIO]
        aliases = cover_aliases(
            tracks, [f for f in files if f.kind != AUDIO], self.index.pictures(self.priority)
        )
        new = Tree.build([*files, *aliases], folders, track_count=len(tracks))
        fault_point("tree.publish")
        old, self.tree = self.tree, new
        self._unpublished = False
        log.info("serving %d tracks (%d files) in %d entries", new.track_count, new.file_count, len(new))
        for listener in self.listeners:
            listener(old, new)
        return new


def _entry(indexed: IndexedFile, priority: int) -> TrackEntry:
    name = os.fsdecode(posixpath.basename(indexed.relpath))
    stem, dot, ext = name.rpartition(".")
    return TrackEntry(
        indexed.inode, priority, stem if dot else name, ext.lower() if dot else "", indexed.tags or TagSet()
    )


def _place_covers(files: list[IndexedFile], viewpaths: dict[int, bytes | None]) -> None:
    """Show each cover image in the album folder of the tracks that sit beside it in the origin.

    When those tracks landed in several folders, the cover's place is the first of them (by name;
    `musicfs.tree.covers` shows it in the others too). A cover whose name is taken there (each disc's
    `CD2/cover.jpg` of one album) is shown with its origin folder's name: `cover (CD2).jpg`.
    """
    album_of: dict[tuple[int, bytes], bytes] = {}
    taken: set[bytes] = set()
    for f in files:
        shown = viewpaths.get(f.inode)
        if f.kind == AUDIO and shown is not None:
            key = (f.origin_id, posixpath.dirname(f.relpath))
            folder = posixpath.dirname(shown)
            album_of[key] = min(album_of.get(key, folder), folder)
            taken.add(shown)
    for f in sorted((f for f in files if f.kind != AUDIO), key=lambda f: (f.origin_id, f.relpath)):
        album = album_of.get((f.origin_id, posixpath.dirname(f.relpath)))
        if album is None:
            continue
        name = sanitize_component(os.fsdecode(posixpath.basename(f.relpath))).encode()
        path = posixpath.join(album, name)
        if path in taken:
            stem, ext = posixpath.splitext(name)
            where = os.fsdecode(posixpath.basename(posixpath.dirname(f.relpath))) or "origin"
            path = posixpath.join(album, sanitize_component(f"{os.fsdecode(stem)} ({where})").encode() + ext)
        if path not in taken:
            viewpaths[f.inode] = path
            taken.add(path)


def _folders(viewpaths: Iterable[bytes | None]) -> set[bytes]:
    folders: set[bytes] = set()
    for shown in viewpaths:
        path = shown or b""
        while path:
            path = posixpath.dirname(path)
            if not path or path in folders:
                break
            folders.add(path)
    return folders
