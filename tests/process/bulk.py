"""Small bulk libraries whose view the test knows on its own: where each track must appear under the
default template, and which origin file holds its bytes (never asked of the daemon)."""

from __future__ import annotations

import shutil
from pathlib import Path

from musicfs.demo import DemoTrack, generate_bulk


def bulk_library(root: Path, count: int, *, first_artist: int = 0) -> dict[Path, Path]:
    """Write `count` tracks of artists numbered from `first_artist` (ten tracks an album, one album an
    artist) into `root`; returns view path (relative to the mount) -> the origin file of its bytes."""
    tracks_per_artist = 10
    skipped = first_artist * tracks_per_artist
    written = generate_bulk(root, skipped + count, tracks_per_album=tracks_per_artist, albums_per_artist=1)
    for number in range(first_artist):
        shutil.rmtree(root / f"artist{number:03d}")
    return {_view_path(track): track.path for track in written.tracks[skipped:]}


def _view_path(track: DemoTrack) -> Path:
    """The default template, `{albumartist}/{album}[ ({year})]/[{disc}-][{track:02} ]{title}.{ext}`."""
    return Path(f"{track.albumartist}/{track.album} ({track.year})/{track.track:02d} {track.title}.flac")
