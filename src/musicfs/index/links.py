"""One copy of a track reached by several paths of its origin: symlinks and hard links (issue 13.3).

Owns: `one_path_per_track`, the rule that decides which path of such a track is shown. A track is
what the file is (its origin, device and inode, after following symlinks inside the origin), not the
path that reached it. The path shown is one that goes through no symlink when there is one, else the
first in byte order; among hard links (none of them is a link) the first in byte order. Only files
with a real device take part: a remote origin reports device 0 and an inode made from the content's
ETag, so two identical objects would look like one file (they are two copies, both shown). Cover images
are left alone: a second name of a picture (`folder.jpg` linked to `cover.jpg`) is what players look
for, and shown.
Concurrency: a pure function of its input; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from musicfs.core.kinds import AUDIO
from musicfs.index.store import IndexedFile


def one_path_per_track(files: Sequence[IndexedFile]) -> list[IndexedFile]:
    """`files` without the other paths of a track whose chosen path is among them, in their order."""
    chosen: dict[tuple[int, int, int], IndexedFile] = {}
    for f in files:
        if not _one_file_of_many(f):
            continue
        key = (f.origin_id, f.dev, f.ino)
        best = chosen.get(key)
        if best is None or (f.linked, f.relpath) < (best.linked, best.relpath):
            chosen[key] = f
    return [f for f in files if not _one_file_of_many(f) or chosen[(f.origin_id, f.dev, f.ino)] is f]


def _one_file_of_many(f: IndexedFile) -> bool:
    """Whether `f` may be one of several paths of one file: a track of an origin with real devices."""
    return f.kind == AUDIO and f.dev != 0
