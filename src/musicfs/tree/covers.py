"""Cover images where players look for them: extra view paths (aliases) for the covers of the view.

Owns: `cover_aliases`, which, given the shown files of a view, adds for every album folder
1. the covers that sit in the origin beside tracks shown in that folder, when the cover's own place is
   another folder (tracks of one origin folder that landed in several album folders all get its art);
2. a `cover.<ext>` name for the album's preferred cover, when no file of the folder is named
   `cover.*` already (MPD's `albumart` and several players look only for `cover.*`).
An alias shows the same origin file as its cover under another path and inode. Alias inodes come from
the cover's own inode (`ALIAS_BASE + inode * ALIASES_PER_COVER + k`), far above the index's counter, so
they are stable across rescans and restarts and never meet an index inode.
Concurrency: pure functions of immutable inputs; no I/O (what is audio and what is a cover is decided
by the caller's predicates on names).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from musicfs.tree.snapshot import ShownFile

ALIAS_BASE = 1 << 48
ALIASES_PER_COVER = 8
# The cover a folder's `cover.<ext>` alias shows, best first (then by name).
PREFERRED_STEMS = ("cover", "front", "folder", "albumart", "album")


@dataclass(frozen=True, slots=True)
class CoverAlias:
    """A shown file: a cover image under another view path (satisfies `ShownFile`)."""

    inode: int
    viewpath: bytes
    origin_id: int
    relpath: bytes
    size: int
    mtime_ns: int
    ctime_ns: int


def cover_aliases(
    files: Iterable[ShownFile], is_audio: Callable[[bytes], bool], is_cover: Callable[[bytes], bool]
) -> list[CoverAlias]:
    """The aliases to add to a view of `files` (see the module docstring), in a stable order."""
    shown = list(files)
    taken = {f.viewpath for f in shown}
    folders_of_origin_dir: dict[tuple[int, bytes], set[bytes]] = {}
    covers: list[ShownFile] = []
    for f in shown:
        name = posixpath.basename(f.relpath)
        if is_audio(name):
            key = (f.origin_id, posixpath.dirname(f.relpath))
            folders_of_origin_dir.setdefault(key, set()).add(posixpath.dirname(f.viewpath))
        elif is_cover(name):
            covers.append(f)
    aliases: list[CoverAlias] = []
    used: dict[int, int] = {}
    source: dict[int, ShownFile] = {}  # alias inode -> the cover it shows

    def add(cover: ShownFile, path: bytes) -> None:
        number = used.get(cover.inode, 0)
        if path in taken or number >= ALIASES_PER_COVER:
            return
        used[cover.inode] = number + 1
        taken.add(path)
        inode = ALIAS_BASE + cover.inode * ALIASES_PER_COVER + number
        source[inode] = cover
        aliases.append(
            CoverAlias(
                inode, path, cover.origin_id, cover.relpath, cover.size, cover.mtime_ns, cover.ctime_ns
            )
        )

    covers.sort(key=lambda c: c.viewpath)
    in_folder: dict[bytes, list[ShownFile]] = {}
    for cover in covers:
        in_folder.setdefault(posixpath.dirname(cover.viewpath), []).append(cover)
    with_own_art = set(in_folder)
    for cover in covers:
        name = posixpath.basename(cover.viewpath)
        beside = folders_of_origin_dir.get((cover.origin_id, posixpath.dirname(cover.relpath)), set())
        for folder in sorted(beside - with_own_art):
            add(cover, posixpath.join(folder, name))
    for alias in list(aliases):
        in_folder.setdefault(posixpath.dirname(alias.viewpath), []).append(alias)
    for folder, present in sorted(in_folder.items()):
        if any(_stem(posixpath.basename(f.viewpath)) == b"cover" for f in present):
            continue
        best = min(present, key=_preference)
        best = source.get(best.inode, best)
        ext = posixpath.splitext(posixpath.basename(best.relpath))[1].lower()
        add(best, posixpath.join(folder, b"cover" + ext))
    return aliases


def _stem(name: bytes) -> bytes:
    return posixpath.splitext(name)[0].lower()


def _preference(cover: ShownFile) -> tuple[int, bytes]:
    stem = _stem(posixpath.basename(cover.viewpath)).decode(errors="replace")
    rank = next((i for i, s in enumerate(PREFERRED_STEMS) if stem.startswith(s)), len(PREFERRED_STEMS))
    return (rank, cover.viewpath)
