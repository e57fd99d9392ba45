"""Cover images where players look for them: extra view paths (aliases) for the covers of the view.

Owns: `cover_aliases`, which, given the shown tracks and covers of a view, adds for every album folder
1. the covers that sit in the origin beside tracks shown in that folder, when the cover's own place is
   another folder (tracks of one origin folder that landed in several album folders all get its art);
2. a `cover.<ext>` name for the album's preferred cover, when no file of the folder is named
   `cover.*` already (MPD's `albumart` and several players look only for `cover.*`);
3. for a folder of tracks with no cover image at all, `cover.jpg` or `cover.png` showing the front
   cover embedded in one of its tracks: the first track by name that embeds one (its bytes, read
   through from the track's file: a `ViewFile` with a `span`; or, for a picture stored encoded in
   Vorbis comments, `encoded` with the span ``(0, size)``: decoded from the track at open).
An alias is a `ViewFile` of the same origin file as its cover, under another path and inode. Alias
inodes come from the cover's (or track's) own inode (`ALIAS_BASE + inode * ALIASES_PER_COVER + k`),
far above the index's counter, so they are stable across rescans and restarts and never meet an
index inode.
Cost: one pass over the tracks with a set lookup each (only tracks beside a cover are kept); runs at
every publish, start-up included.
Concurrency: pure functions of immutable inputs; no I/O.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable, Mapping, Sequence

from musicfs.core.kinds import COVER
from musicfs.core.types import EmbeddedPicture, ViewFile

ALIAS_BASE = 1 << 48
ALIASES_PER_COVER = 8
# The cover a folder's `cover.<ext>` alias shows, best first (then by name).
PREFERRED_STEMS = ("cover", "front", "folder", "albumart", "album")


def cover_aliases(
    tracks: Sequence[ViewFile],
    covers: Sequence[ViewFile],
    pictures: Mapping[int, EmbeddedPicture] | None = None,
) -> list[ViewFile]:
    """The aliases to add to a view of `tracks` and `covers`, given the front covers the tracks embed
    (`pictures`, by track inode), in a stable order (see the module docstring)."""
    aliases = _file_aliases(tracks, covers) if covers else []
    if pictures:
        with_art = {_folder(f.viewpath) for f in (*covers, *aliases)}
        aliases += _embedded(tracks, pictures, with_art)
    return aliases


def _embedded(
    tracks: Sequence[ViewFile], pictures: Mapping[int, EmbeddedPicture], with_art: set[bytes]
) -> list[ViewFile]:
    """`cover.<ext>` for each folder of tracks without art, from the first track by name with a picture."""
    first: dict[bytes, ViewFile] = {}
    for track in tracks:
        folder = _folder(track.viewpath)
        if track.inode in pictures and folder not in with_art:
            known = first.get(folder)
            if known is None or track.viewpath < known.viewpath:
                first[folder] = track
    aliases = []
    for folder, track in sorted(first.items()):
        picture = pictures[track.inode]
        aliases.append(
            dataclasses.replace(
                track,
                inode=ALIAS_BASE + track.inode * ALIASES_PER_COVER,
                viewpath=posixpath.join(folder, f"cover.{picture.ext}".encode()),
                kind=COVER,
                span=(picture.offset or 0, picture.size),
                encoded=picture.offset is None,
            )
        )
    return aliases


def _file_aliases(tracks: Iterable[ViewFile], covers: Sequence[ViewFile]) -> list[ViewFile]:
    """Passes 1 and 2 of the module docstring."""
    covers = sorted(covers, key=lambda c: c.viewpath)
    beside_covers = {(c.origin_id, _folder(c.relpath)) for c in covers}
    folders_of_origin_dir: dict[tuple[int, bytes], set[bytes]] = {}
    for track in tracks:
        key = (track.origin_id, _folder(track.relpath))
        if key in beside_covers:
            folders_of_origin_dir.setdefault(key, set()).add(_folder(track.viewpath))
    # An alias has an image's name, so only another image (a cover or an alias) can hold its path.
    taken = {c.viewpath for c in covers}
    aliases: list[ViewFile] = []
    used: dict[int, int] = {}
    source: dict[int, ViewFile] = {}  # alias inode -> the cover it shows

    def add(cover: ViewFile, path: bytes) -> None:
        number = used.get(cover.inode, 0)
        if path in taken or number >= ALIASES_PER_COVER:
            return
        used[cover.inode] = number + 1
        taken.add(path)
        alias = dataclasses.replace(
            cover, inode=ALIAS_BASE + cover.inode * ALIASES_PER_COVER + number, viewpath=path
        )
        source[alias.inode] = cover
        aliases.append(alias)

    in_folder: dict[bytes, list[ViewFile]] = {}
    for cover in covers:
        in_folder.setdefault(_folder(cover.viewpath), []).append(cover)
    with_own_art = set(in_folder)
    for cover in covers:
        name = posixpath.basename(cover.viewpath)
        beside = folders_of_origin_dir.get((cover.origin_id, _folder(cover.relpath)), set())
        for folder in sorted(beside - with_own_art):
            add(cover, posixpath.join(folder, name))
    for alias in list(aliases):
        in_folder.setdefault(_folder(alias.viewpath), []).append(alias)
    for folder, present in sorted(in_folder.items()):
        if any(_stem(posixpath.basename(f.viewpath)) == b"cover" for f in present):
            continue
        best = min(present, key=lambda f: preference(posixpath.basename(f.viewpath)))
        best = source.get(best.inode, best)
        ext = posixpath.splitext(posixpath.basename(best.relpath))[1].lower()
        add(best, posixpath.join(folder, b"cover" + ext))
    return aliases


def _folder(path: bytes) -> bytes:
    return path.rpartition(b"/")[0]


def _stem(name: bytes) -> bytes:
    return posixpath.splitext(name)[0].lower()


def preference(name: bytes) -> tuple[int, bytes]:
    """The order in which images of one folder are preferred as its cover (lowest first)."""
    stem = _stem(name).decode(errors="replace")
    rank = next((i for i, s in enumerate(PREFERRED_STEMS) if stem.startswith(s)), len(PREFERRED_STEMS))
    return (rank, name)
