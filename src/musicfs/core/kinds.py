"""Which files of an origin the view shows, by name: audio tracks and cover images.

Owns: the file-kind rules every layer agrees on: `AUDIO_EXTENSIONS`, `COVER_NAMES`,
`is_cover_name`, the kinds `AUDIO` and `COVER` the index stores, and `kind_of`. They sit below
origins, tags, index and tree so that none of them needs another to know what a track is (the FUSE
edge then never loads mutagen through the origins).
Concurrency: constants and pure functions.
"""

from __future__ import annotations

AUDIO = "audio"
COVER = "cover"

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        "flac",
        "mp3",
        "mp2",
        "ogg",
        "oga",
        "opus",
        "spx",
        "m4a",
        "m4b",
        "mp4",
        "aac",
        "alac",
        "wav",
        "aif",
        "aiff",
        "aifc",
        "wv",
        "ape",
        "mpc",
        "mp+",
        "tta",
        "ofr",
        "ofs",
        "tak",
        "wma",
        "asf",
        "dsf",
        "dff",
    }
)
"""Extensions (lower case, no dot) of files the scanner hands to `read_tags`."""

_COVER_STEMS = ("cover", "folder", "front", "album", "albumart")
_COVER_EXTS = ("jpg", "jpeg", "png")
COVER_NAMES: frozenset[str] = frozenset(f"{stem}.{ext}" for stem in _COVER_STEMS for ext in _COVER_EXTS)
"""Lower-case names of the cover image files that players look for beside an album's tracks."""


def is_cover_name(name: str) -> bool:
    """Tell whether a file name is one of the cover image names players look for.

    Args:
        name: a bare file name such as ``"Folder.JPG"`` (no directory part).

    Returns:
        True when the name, ignoring case, is in `COVER_NAMES`.
    """
    return name.lower() in COVER_NAMES


_AUDIO_SUFFIXES = tuple(f".{ext}".encode() for ext in AUDIO_EXTENSIONS)


def kind_of(name: bytes) -> str | None:
    """AUDIO, COVER, or None (not shown) for a bare file name."""
    if name.lower().endswith(_AUDIO_SUFFIXES):
        return AUDIO
    if is_cover_name(name.decode(errors="replace")):  # cover names are ASCII
        return COVER
    return None
