"""Generating a small but real music library, for the README quick-start, test fixtures and benchmarks.

Owns: `generate_library` (about twenty short tagged tones in messy folders, full of edge cases),
`generate_bulk` (thousands of tagged FLAC copies for benchmarks); `musicfs demo` is its command.
What is written lives in `catalogue`, how each format is written in `containers`. The audio is real
(sine chords encoded by libsndfile through soundfile); the tags are written by mutagen.

Concurrency: plain blocking functions that only write below the folder they are given; safe to run
in several threads on different folders.

Output is deterministic: the same seed gives the same names, tags and bytes (Ogg stream serial
numbers, random in libsndfile, are rewritten to a fixed value).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from musicfs.demo.catalogue import COVER_JPG, COVER_PNG, JPEG, NOTES, SPECS, DemoLibrary, DemoTrack, expected
from musicfs.demo.containers import (
    audio_modules,
    encode,
    png,
    split_flac,
    tone,
    vorbis_block,
    write_audio,
    write_tags,
)

__all__ = ["DemoLibrary", "DemoTrack", "generate_bulk", "generate_library"]


def generate_library(dest: Path, *, seed: int = 0, seconds: float = 1.0) -> DemoLibrary:
    """Write the demo library below `dest` (created if needed; files of the same names are replaced).

    Args:
        dest: the folder to fill; the paths returned are absolute.
        seed: changes the tones and the corrupt file's bytes; names and tags never change.
        seconds: length of each tone.

    Returns:
        What was written, with the tags each track should read back as.

    Raises:
        RuntimeError: numpy or soundfile is not installed.
    """
    np, sf = audio_modules()
    dest = dest.absolute()
    tracks = []
    for index, spec in enumerate(SPECS):
        path = _path(dest, spec.rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec.fmt == "corrupt":
            rng = random.Random(f"{seed}-corrupt")
            path.write_bytes(bytes(rng.randrange(0xFF) for _ in range(4096)))  # no 0xFF: no MPEG sync
        else:
            samples = tone(np, seed, index, seconds)
            write_audio(np, sf, path, spec.fmt, samples)
            write_tags(path, spec.fmt, spec.written)
        tracks.append(expected(path, spec))
    covers = (_path(dest, COVER_PNG), _path(dest, COVER_JPG))
    covers[0].write_bytes(png(32, 32, seed))
    covers[1].write_bytes(JPEG)
    notes = _path(dest, NOTES)
    notes.write_text("Ripped from my own CDs. Not audio: MusicFS must ignore this file.\n", encoding="utf-8")
    return DemoLibrary(root=dest, tracks=tuple(tracks), covers=covers, others=(notes,))


def generate_bulk(
    dest: Path,
    count: int,
    *,
    seed: int = 0,
    template_file: Path | None = None,
    tracks_per_album: int = 10,
    albums_per_artist: int = 10,
    seconds: float = 0.25,
) -> DemoLibrary:
    """Write `count` small tagged FLAC files fast, for benchmarks.

    One real FLAC is encoded per template (or `template_file` is used, which needs neither numpy nor
    soundfile); every track is that file's audio with a freshly serialised Vorbis comment block.

    Args:
        dest: the folder to fill (``dest/artistNNN/albumNN/NN.flac``).
        count: how many tracks.
        seed: changes the years and genres (and the generated tones).
        template_file: a FLAC file whose audio every track reuses.
        tracks_per_album: tracks in each album.
        albums_per_artist: albums of each artist.
        seconds: length of the generated template tone.

    Returns:
        The tracks written, with their tags.
    """
    dest = dest.absolute()
    if template_file is not None:
        templates = [split_flac(template_file.read_bytes())]
    else:
        np, sf = audio_modules()
        templates = [split_flac(encode(sf, tone(np, seed, n, seconds), "flac")) for n in range(4)]
    rng = random.Random(seed)
    genres = ("Rock", "Jazz", "Electronic", "Folk", "Classical", "Hip-Hop")
    per_artist = tracks_per_album * albums_per_artist
    tracks = []
    album_tags: dict[str, str] = {}
    for number in range(count):
        artist_no, rest = divmod(number, per_artist)
        album_no, track_no = divmod(rest, tracks_per_album)
        if track_no == 0:
            album_tags = {"date": str(rng.randrange(1950, 2025)), "genre": rng.choice(genres)}
        artist = f"Bulk Artist {artist_no:03d}"
        track = DemoTrack(
            path=dest / f"artist{artist_no:03d}" / f"album{album_no:02d}" / f"{track_no + 1:02d}.flac",
            artist=artist,
            albumartist=artist,
            album=f"Bulk Album {artist_no:03d}-{album_no:02d}",
            title=f"Song {number:05d}",
            genre=album_tags["genre"],
            date=album_tags["date"],
            year=int(album_tags["date"]),
            track=track_no + 1,
            tracktotal=tracks_per_album,
        )
        streaminfo, frames = templates[(artist_no * albums_per_artist + album_no) % len(templates)]
        track.path.parent.mkdir(parents=True, exist_ok=True)
        track.path.write_bytes(b"fLaC" + streaminfo + vorbis_block(track) + frames)
        tracks.append(track)
    return DemoLibrary(root=dest, tracks=tuple(tracks))


def _path(dest: Path, rel: str | bytes) -> Path:
    return dest / (os.fsdecode(rel) if isinstance(rel, bytes) else rel)
