"""Origins a test writes itself, so it knows independently which origin file each view path shows.

Every track is a copy of one real FLAC of the demo library with tags of its own (so the bytes of every
track differ), and the default template puts it at `ARTIST/ALBUM/NN TITLE.flac`. Tests compare what
the mount serves with the bytes they wrote, never with a path the daemon reports.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mutagen.flac

from musicfs.demo import DemoLibrary

_FLAC: Any = mutagen.flac.FLAC


def source_flac(demo: DemoLibrary) -> Path:
    """A real FLAC of the demo library with audio in it."""
    return next(p for p in sorted(demo.root.rglob("*.flac")) if _FLAC(p).info.length > 0)


def write_track(source: Path, target: Path, *, artist: str, album: str, title: str, track: int) -> Path:
    """Copy `source` to `target` with these tags only; returns the view path the mount shows it at."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    audio = _FLAC(target)
    audio.delete()
    audio.clear_pictures()
    audio = _FLAC(target)
    if audio.tags is None:
        audio.add_tags()
    audio["artist"] = artist
    audio["albumartist"] = artist
    audio["album"] = album
    audio["title"] = title
    audio["tracknumber"] = str(track)
    audio.save()
    return Path(artist) / album / f"{track:02} {title}.flac"


def write_album(source: Path, folder: Path, *, artist: str, album: str, count: int) -> dict[Path, Path]:
    """`count` tracks in `folder`; view path -> origin file."""
    return {
        write_track(
            source, folder / f"track{n}.flac", artist=artist, album=album, title=f"Song {n}", track=n
        ): folder / f"track{n}.flac"
        for n in range(1, count + 1)
    }
