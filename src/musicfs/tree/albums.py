"""The album grouping a tree shows, one line per album folder, for `musicfs tree --albums`.

Owns: `album_lines`, which says for every folder holding tracks how many it holds, the year and
MusicBrainz release the layout chose for them, and where the folder's cover comes from: the origin
file shown as its `cover.*` (or its preferred image when it has no `cover.*`), the track whose
embedded picture it is, or none.
Concurrency: a pure function of immutable inputs; no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from musicfs.tree.covers import preference
from musicfs.tree.layout import Album
from musicfs.tree.snapshot import Node, Tree


def album_lines(tree: Tree, albums: Mapping[int, Album], origin_roots: Mapping[int, bytes]) -> list[str]:
    """One line per folder of `tree` holding tracks, sorted by path.

    Args:
        tree: the view.
        albums: what the layout decided for each shown track, by inode (`musicfs.tree.layout.albums`).
        origin_roots: the folder of each origin, by origin id (to name where a cover comes from).
    """
    lines = []
    for _, folder in tree.items():
        if folder.children is None:
            continue
        files = [tree.get(child) for child in folder.children.values()]
        tracks = [albums[f.inode] for f in files if f is not None and f.inode in albums]
        if not tracks:
            continue
        images = [f for f in files if f is not None and f.children is None and f.inode not in albums]
        lines.append((tree.path_of(folder), _describe(tracks, images, origin_roots)))
    return [f"{_text(path)}: {text}" for path, text in sorted(lines)]


def _describe(tracks: list[Album], images: list[Node], origin_roots: Mapping[int, bytes]) -> str:
    parts = [f"{len(tracks)} track{'s' if len(tracks) != 1 else ''}"]
    years = sorted({a.year for a in tracks if a.year is not None})
    parts.append(f"year{'s' if len(years) > 1 else ''} {', '.join(map(str, years))}" if years else "no year")
    releases = sorted({a.release for a in tracks if a.release is not None})
    if releases:
        parts.append(f"release{'s' if len(releases) > 1 else ''} {', '.join(releases)}")
    parts.append(_cover(images, origin_roots))
    return ", ".join(parts)


def _cover(images: list[Node], origin_roots: Mapping[int, bytes]) -> str:
    if not images:
        return "no cover"
    named_cover = [f for f in images if posixpath.splitext(f.name)[0].lower() == b"cover"]
    shown = min(named_cover or images, key=lambda f: preference(f.name))
    where = _text(posixpath.join(origin_roots[shown.origin_id], shown.relpath))
    return f"cover embedded in {where}" if shown.span is not None else f"cover {where}"


def _text(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace").decode()
