"""The independent answer to "what must the mount show, and which bytes must each file give".

Owns: `DEMO_VIEW`, every path the default template must give the demo library that
`musicfs.demo.generate_library` writes, each with the origin file it must serve; `demo_view` (those
paths with absolute origin files, for a library at a given root), `demo_bytes` (the mount's paths
with the bytes read straight from those origin files) and `listed` (what a mount lists, to compare).

Why by hand: a test that asks the daemon where a file comes from (`user.musicfs.origin`), or compares
the mount with a listing the daemon made, checks MusicFS against itself and passes whatever the bug.
The paths below are written out from the tags `musicfs.demo` writes and the default template's rules
as the README states them (`{albumartist}/{album}[ ({year})]/[{disc}-][{track:02} ]{title}.{ext}`;
`Various Artists` for compilations without an album artist; `Unknown Artist` / `Unknown Album`; the
title, else the file's name; `/` shown as U+2215; of two clashing tracks the one found later gets
` (2)`; covers in their album's folder, and as `cover.<ext>` where no file is named so). Nothing
here calls MusicFS's layout code. Names and tags of the demo library do not depend on its seed, so
this holds for every seed (the bytes do not).

Concurrency: constants and plain blocking functions that only read; safe from any thread.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEMO_VIEW", "demo_bytes", "demo_view", "listed"]

_HOMOGENIC = "Downloads/Björk - Homogenic [FLAC]"
_AGAETIS = "Music/Sigur Rós/Ágætis byrjun"
_TOKYO = "CD Rips/山田太郎 - 東京の夜 (2CD)"
_IPOD = "old_ipod/iPod_Control/Music"

DEMO_VIEW: dict[str, str] = {
    # view path (relative to the mountpoint) -> origin file (relative to the library root)
    # Two files with the same artist, album, number and title but other audio: the one the first scan
    # finds first keeps the name. The scan takes the files of a folder in name order but descends
    # into the last-named subfolder first, so Downloads/dupes/ comes before "Björk - Homogenic".
    "Björk/Homogenic (1997)/01 Hunter.flac": "Downloads/dupes/01 hunter (1).flac",
    "Björk/Homogenic (1997)/01 Hunter (2).flac": f"{_HOMOGENIC}/01 hunter.flac",  # "1/3": number/total
    "Björk/Homogenic (1997)/02 Jóga: Live\u2215Remix.flac": f"{_HOMOGENIC}/02 - joga.flac",  # '/' in a title
    "Björk/Homogenic (1997)/03 Unravel.flac": f"{_HOMOGENIC}/03.flac",  # "03" zero-padded
    "Björk/Homogenic (1997)/cover.png": f"{_HOMOGENIC}/cover.png",
    "Björk/Debut (1993)/01 Human Behaviour.mp3": "old_stuff/winamp/bjork - human behaviour.mp3",  # ID3v1
    # disc 1 of 1: not a multi-disc album, so no "1-" prefix
    "Sigur Rós/Ágætis byrjun (1999)/01 Svefn-g-englar.ogg": f"{_AGAETIS}/track1.ogg",
    "Sigur Rós/Ágætis byrjun (1999)/02 Starálfur.ogg": f"{_AGAETIS}/track2.ogg",
    "Sigur Rós/Ágætis byrjun (1999)/03 Viðrar vel til loftárása.ogg": f"{_AGAETIS}/track3.ogg",
    "Sigur Rós/Ágætis byrjun (1999)/folder.jpg": f"{_AGAETIS}/folder.jpg",
    "Sigur Rós/Ágætis byrjun (1999)/cover.jpg": f"{_AGAETIS}/folder.jpg",  # the name MPD looks for
    "Sigur Rós/Untitled Demos/01 Untitled #1.opus": "Music/Sigur Rós/demos/untitled 1.opus",  # no year
    "Sigur Rós/Untitled Demos/02 Untitled #2.opus": "Music/Sigur Rós/demos/untitled 2.opus",
    "山田太郎/東京の夜 (2005)/1-01 夜明け.mp3": f"{_TOKYO}/CD1/01 - 夜明け.mp3",  # discs "1/2", "2/2"
    "山田太郎/東京の夜 (2005)/1-02 渋谷.mp3": f"{_TOKYO}/CD1/02 - 渋谷.mp3",
    "山田太郎/東京の夜 (2005)/2-01 新宿.mp3": f"{_TOKYO}/CD2/01 - 新宿.mp3",
    "山田太郎/東京の夜 (2005)/2-02 東京タワー.mp3": f"{_TOKYO}/CD2/02 - 東京タワー.mp3",
    "山田太郎/Café Sessions (2012)/01 Café.flac": os.fsdecode(b"Downloads/misc/caf\xe9.flac"),  # Latin-1 name
    "Various Artists/Summer Hits 2010 (2010)/01 Summer Song.m4a": f"{_IPOD}/F01/ABCD.m4a",  # aART given
    "Various Artists/Summer Hits 2010 (2010)/02 Sumar.wav": f"{_IPOD}/F01/EFGH.wav",  # compilation flag alone
    "Various Artists/Summer Hits 2010 (2010)/03 夏の歌.aiff": f"{_IPOD}/F02/IJKL.aiff",
    "Various Artists/Summer Hits 2010 (2010)/04 Duet.flac": f"{_IPOD}/F02/MNOP.flac",  # two artists
    "Various Artists/Summer Hits 2010 (2010)/05 Mix.mp3": f"{_IPOD}/F03/QRST.mp3",
    "Unknown Artist/Unknown Album/untagged.flac": "Downloads/misc/untagged.flac",  # no tags: its file name
    "Unknown Artist/Unknown Album/Only A Title.ogg": "Downloads/misc/only title.ogg",
    "Unknown Artist/Unknown Album/corrupt.mp3": "Downloads/misc/corrupt.mp3",  # unreadable: still shown
}


def demo_view(root: Path) -> dict[str, Path]:
    """`DEMO_VIEW` for a demo library (or a copy of one) at `root`: view path -> absolute origin file."""
    return {view: root / origin for view, origin in DEMO_VIEW.items()}


def demo_bytes(root: Path, mountpoint: Path) -> dict[Path, bytes]:
    """Every path the mount of the demo library at `root` must show, with the bytes it must give:
    read from the origin file the oracle names, never through the mount."""
    return {mountpoint / view: origin.read_bytes() for view, origin in demo_view(root).items()}


def listed(mountpoint: Path) -> list[str]:
    """The paths of every file the mount lists (relative, sorted): what the daemon shows, to be
    compared with an oracle, never used as one."""
    return sorted(
        str((Path(folder) / name).relative_to(mountpoint))
        for folder, _, names in os.walk(mountpoint)
        for name in names
    )
