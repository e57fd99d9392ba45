"""Where each track is shown: from track entries and a template to final, valid path components.

Owns: resolving fields (defaults, compilations, multi-disc albums), choosing one copy of a track
present in several origins, and keeping every shown path unique.
Concurrency: `layout` is a pure function of immutable inputs and holds no state between calls; safe
to call from any thread.

Rules, all independent of the order of the entries:

* Fields: ``albumartist`` is the album artist tag, else "Various Artists" for a compilation, else the
  track artist, else "Unknown Artist" (an explicit album artist wins over the compilation flag);
  ``artist`` falls back to "Unknown Artist", ``album`` to "Unknown Album", ``title`` to the file's stem.
  A tag that is blank once cleaned counts as missing.
* Albums are grouped by albumartist and album, compared case-insensitively (casefold of the NFC text),
  and by release: the MusicBrainz album id. A track without one belongs to the release of its album
  name that has most tracks (ties: the smallest id), so one untagged track joins its album. Each album
  artist, and each album of it, is spelled the same way on every track: its most common spelling,
  ties going to the smallest string (so ``ABBA`` and ``Abba`` share one folder).
* Two releases of one album name are told apart in the ``album`` field: by `` [YEAR]`` when their years
  (each release's most common year) all differ, and then only if the template's folders do not show
  the year already; else by `` [ID]``, the first 8 characters of each release id (all of it if two
  releases share those). One release, or none, adds nothing.
* ``year`` is the album's, not the track's: the most common year among the album's tracks, ties going
  to the earliest, so a track without a date or with a stray one joins its album's folder. Only when
  two years of one album each hold a track of the same disc and number (an original and a remaster
  tagged as the same album) are they two editions: each track then keeps its own year, and tracks
  without one take the album's most common year.
* ``disc`` is filled only for a multi-disc album: one whose tracks have a disctotal above 1 or
  span more than one disc number.
* The same track in several origins: tracks with a title tag whose identity (album artist, album,
  disc as filled above, track number, title; casefolded) and extension are equal are copies of one
  track. Only the copies from the lowest ``origin_priority`` among them are shown; copies sharing a
  priority are distinct files of one origin and are all shown. Tracks without a title tag are never
  merged.
* Collisions: tracks still landing on the same path (compared exactly; names are NFC) are ordered by
  ``(origin_priority, track_id)``; the first keeps the name, the others get `` (2)``, `` (3)``... before
  the extension, skipping any number whose name another track already has; the stem is shortened
  if needed to fit 255 bytes. Clashing groups are handled in sorted path order.
* A file can never share its path with a folder: a template has a fixed number of components, so all
  files sit at the same depth and all folders above it.

Speed: artist and album names are resolved once per distinct tagging, folders rendered once per
distinct value of the template's `folder_fields` (memos local to the call), and a clashing group is
numbered in linear time; see `layout` for a measured figure.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Final, NamedTuple, TypeVar

from musicfs.core.types import TagSet, TrackEntry
from musicfs.tree.sanitize import clean_text, sanitize_component
from musicfs.tree.template import FieldValue, Template

UNKNOWN_ARTIST: Final = "Unknown Artist"
UNKNOWN_ALBUM: Final = "Unknown Album"
VARIOUS_ARTISTS: Final = "Various Artists"

_K = TypeVar("_K")
_NameKey = tuple[str, str]
_AlbumKey = tuple[str, str, str | None]  # album artist and album (folded), release id
_Path = tuple[str, ...]
_RawNames = tuple[str | None, str | None, str | None, bool]


class _Names(NamedTuple):
    """The cleaned, resolved names of a track's artist and album, shared by the tracks that tag them alike."""

    albumartist: str
    album: str
    key: _NameKey
    artist: str


class _Track(NamedTuple):
    """An entry with its resolved names and album; `title` is the cleaned title tag, ``None`` when there
    is none."""

    entry: TrackEntry
    names: _Names
    title: str | None
    album: _AlbumKey


def layout(entries: Iterable[TrackEntry], template: Template) -> dict[int, tuple[str, ...]]:
    """Lays out a collection: every shown track's path, as valid components.

    Measured on a slow two-core VM: 0.9 s for 100,000 tagged entries, 1.2 s for 100,000 untagged
    ones clashing in 20 names.

    Args:
        entries: every track in the collection; their track_ids must be distinct.
        template: where tracks go.

    Returns:
        ``track_id -> (folder, ..., file name)`` for every shown track, ordered by track_id. Hidden
        copies (see the module docstring) are absent. Every path is distinct and every component is
        valid (see `musicfs.tree.sanitize`).

    Raises:
        ValueError: two entries share a track_id.
    """
    tracks, multi_disc, renderer = _prepare(entries, template)
    shown = {track.entry.track_id: track for track in _shown(tracks, multi_disc)}
    paths = {track_id: renderer.path(track) for track_id, track in shown.items()}
    _separate_clashes(paths, shown, renderer)
    return {track_id: paths[track_id] for track_id in sorted(paths)}


class Album(NamedTuple):
    """What the layout decided for a track's album: the album artist and album shown (with what tells
    releases apart), the album's year and its MusicBrainz release (None: no track of it has one)."""

    albumartist: str
    album: str
    year: int | None
    release: str | None


def albums(entries: Iterable[TrackEntry], template: Template) -> dict[int, Album]:
    """The album `layout` puts each track in, by track_id, as it rendered its fields (see the module
    docstring); for showing why a track landed where it did (`musicfs tree --albums`)."""
    tracks, _, renderer = _prepare(entries, template)
    return {track.entry.track_id: renderer.album(track) for track in tracks}


def _prepare(
    entries: Iterable[TrackEntry], template: Template
) -> tuple[list[_Track], set[_AlbumKey], _Renderer]:
    """The resolved tracks, the multi-disc albums and the renderer of one `layout` call."""
    names: dict[_RawNames, _Names] = {}
    tracks = _with_releases([_track(entry, names) for entry in entries])
    if len({track.entry.track_id for track in tracks}) != len(tracks):
        raise ValueError("two entries share a track_id")
    multi_disc = _multi_disc_albums(tracks)
    return tracks, multi_disc, _Renderer(template, tracks, multi_disc)


def _track(entry: TrackEntry, names: dict[_RawNames, _Names]) -> _Track:
    """Pairs `entry` with its resolved names (memoised in `names`) and cleaned title tag."""
    tags = entry.tags
    raw = (tags.albumartist, tags.artist, tags.album, tags.compilation)
    resolved = names.get(raw)
    if resolved is None:
        resolved = names[raw] = _resolve_names(tags)
    return _Track(entry, resolved, _clean(tags.title), (*resolved.key, tags.mb_albumid))


def _with_releases(tracks: list[_Track]) -> list[_Track]:
    """The tracks, those without a release id given the one of their album name with most tracks."""
    counts: dict[_NameKey, Counter[str]] = {}
    for track in tracks:
        if track.album[2] is not None:
            counts.setdefault(track.names.key, Counter())[track.album[2]] += 1
    if not counts:
        return tracks
    biggest = {key: min(found, key=lambda r: (-found[r], r)) for key, found in counts.items()}
    return [
        track._replace(album=(*track.names.key, biggest[track.names.key]))
        if track.album[2] is None and track.names.key in biggest
        else track
        for track in tracks
    ]


def _resolve_names(tags: TagSet) -> _Names:
    """Resolves the album artist, album and artist of `tags`, with their defaults."""
    albumartist = _clean(tags.albumartist)
    if albumartist is None:
        albumartist = VARIOUS_ARTISTS if tags.compilation else _clean(tags.artist) or UNKNOWN_ARTIST
    album = _clean(tags.album) or UNKNOWN_ALBUM
    artist = _clean(tags.artist) or UNKNOWN_ARTIST
    return _Names(albumartist, album, (_fold(albumartist), _fold(album)), artist)


def _clean(text: str | None) -> str | None:
    """Returns `text` cleaned (`clean_text`), or ``None`` when it is missing or blank."""
    if text is None:
        return None
    return clean_text(text) or None


def _fold(text: str) -> str:
    """The case-insensitive form of a cleaned text (NFC of its casefold), for comparisons only."""
    return unicodedata.normalize("NFC", text.casefold())


def _multi_disc_albums(tracks: Iterable[_Track]) -> set[_AlbumKey]:
    """The albums with a disctotal above 1 on some track, or tracks on more than one disc."""
    multi: set[_AlbumKey] = set()
    discs: dict[_AlbumKey, set[int]] = {}
    for track in tracks:
        tags, key = track.entry.tags, track.album
        if tags.disctotal is not None and tags.disctotal > 1:
            multi.add(key)
        if tags.disc is not None:
            discs.setdefault(key, set()).add(tags.disc)
    multi.update(key for key, numbers in discs.items() if len(numbers) > 1)
    return multi


def _disc(track: _Track, multi_disc: set[_AlbumKey]) -> int | None:
    """The disc number shown for `track`: its disc tag on a multi-disc album, else none."""
    return track.entry.tags.disc if track.album in multi_disc else None


def _shown(tracks: list[_Track], multi_disc: set[_AlbumKey]) -> list[_Track]:
    """Drops the copies of a track that a lower origin_priority also has."""
    identities = [_identity(track, multi_disc) for track in tracks]
    best: dict[tuple[object, ...], int] = {}
    for track, identity in zip(tracks, identities, strict=True):
        priority = track.entry.origin_priority
        if identity is not None and best.get(identity, priority) >= priority:
            best[identity] = priority
    return [
        track
        for track, identity in zip(tracks, identities, strict=True)
        if identity is None or best[identity] == track.entry.origin_priority
    ]


def _identity(track: _Track, multi_disc: set[_AlbumKey]) -> tuple[object, ...] | None:
    """What copies of one track share: album, disc, track number, title and extension; none untitled."""
    if track.title is None:
        return None
    entry = track.entry
    return (track.album, _disc(track, multi_disc), entry.tags.track, _fold(track.title), entry.ext)


class _Renderer:
    """Renders valid paths of tracks for one `layout` call, memoising folders by their field values."""

    def __init__(self, template: Template, tracks: list[_Track], multi_disc: set[_AlbumKey]) -> None:
        self._template = template
        self._multi_disc = multi_disc
        self._artist_spellings = _spellings((track.names.key[0], track.names.albumartist) for track in tracks)
        self._album_spellings = _spellings((track.names.key, track.names.album) for track in tracks)
        self._years = _album_years(tracks)
        self._suffixes = _release_suffixes(tracks, "year" in template.folder_fields)
        self._folders: dict[object, _Path] = {}
        self._folder_key = _values_of(template.folder_fields)

    def path(self, track: _Track, suffix: str = "") -> _Path:
        """The valid folders and file name of `track`, with `suffix` (like `` (2)``) after the stem."""
        fields = self._fields(track)
        stem, ext = self._template.render_file(fields)
        return (*self._render_folders(fields), sanitize_component(stem, ext=ext, suffix=suffix))

    def album(self, track: _Track) -> Album:
        """The album fields `path` renders for `track`."""
        fields = self._fields(track)
        albumartist, album, year = fields["albumartist"], fields["album"], fields["year"]
        assert isinstance(albumartist, str) and isinstance(album, str) and not isinstance(year, str)
        return Album(albumartist, album, year, track.album[2])

    def _render_folders(self, fields: dict[str, FieldValue]) -> _Path:
        """The valid folders for `fields`, rendered once per distinct value of the folder fields."""
        key = self._folder_key(fields)
        folders = self._folders.get(key)
        if folders is None:
            raw = self._template.render_folders(fields)
            folders = self._folders[key] = tuple(map(sanitize_component, raw))
        return folders

    def _fields(self, track: _Track) -> dict[str, FieldValue]:
        """The template fields of `track`, with the chosen spellings of its album artist and album."""
        entry, tags, names = track.entry, track.entry.tags, track.names
        return {
            "albumartist": self._artist_spellings[names.key[0]],
            "artist": names.artist,
            "album": self._album_spellings[names.key] + self._suffixes.get(track.album, ""),
            "title": track.title or entry.stem,
            "genre": tags.genre,
            "year": self._years.get(entry.track_id),
            "track": tags.track,
            "tracktotal": tags.tracktotal,
            "disc": _disc(track, self._multi_disc),
            "disctotal": tags.disctotal,
            "ext": entry.ext,
        }


def _album_years(tracks: Iterable[_Track]) -> dict[int, int]:
    """The year shown for each track that has one (see the module docstring), by track_id."""
    albums: dict[_AlbumKey, list[_Track]] = {}
    for track in tracks:
        albums.setdefault(track.album, []).append(track)
    shown: dict[int, int] = {}
    for album in albums.values():
        numbers: dict[int, set[tuple[int | None, int]]] = {}
        for track in album:
            year = track.entry.tags.year
            if year is not None:
                numbered = numbers.setdefault(year, set())
                if track.entry.tags.track is not None:
                    numbered.add((track.entry.tags.disc, track.entry.tags.track))
        if not numbers:
            continue
        common = _most_common(Counter(t.entry.tags.year for t in album if t.entry.tags.year is not None))
        editions = _share_a_number(list(numbers.values()))
        for track in album:
            own = track.entry.tags.year
            shown[track.entry.track_id] = own if editions and own is not None else common
    return shown


def _most_common(years: Counter[int]) -> int:
    """The most common year, ties going to the earliest."""
    return min(years, key=lambda year: (-years[year], year))


def _release_suffixes(tracks: Iterable[_Track], year_shown: bool) -> dict[_AlbumKey, str]:
    """What tells apart the releases of one album name (see the module docstring), by album."""
    releases: dict[_NameKey, dict[str, Counter[int]]] = {}
    for track in tracks:
        release = track.album[2]
        if release is not None:
            counts = releases.setdefault(track.names.key, {}).setdefault(release, Counter())
            if track.entry.tags.year is not None:
                counts[track.entry.tags.year] += 1
    suffixes: dict[_AlbumKey, str] = {}
    for name, found in releases.items():
        if len(found) < 2:
            continue
        years = {release: _most_common(counted) if counted else None for release, counted in found.items()}
        if None not in years.values() and len(set(years.values())) == len(years):
            if not year_shown:
                suffixes.update(((*name, release), f" [{year}]") for release, year in years.items())
            continue
        short = {release[:8] for release in found}
        width = 8 if len(short) == len(found) else None
        suffixes.update(((*name, release), f" [{release[:width]}]") for release in found)
    return suffixes


def _share_a_number(groups: list[set[tuple[int | None, int]]]) -> bool:
    """Whether two of the groups hold the same (disc, track) number."""
    seen: set[tuple[int | None, int]] = set()
    for group in groups:
        if seen & group:
            return True
        seen |= group
    return False


def _values_of(names: tuple[str, ...]) -> Callable[[Mapping[str, FieldValue]], object]:
    """A fast function of field mappings, equal for mappings with equal values of the `names` fields."""
    return itemgetter(*names) if names else lambda _fields: ()


def _spellings(pairs: Iterable[tuple[_K, str]]) -> dict[_K, str]:
    """Chooses each key's spelling: the most common, ties going to the smallest string."""
    best: dict[_K, tuple[int, str]] = {}
    for (key, spelling), count in Counter(pairs).items():
        current = best.get(key)
        if current is None or (-count, spelling) < (-current[0], current[1]):
            best[key] = (count, spelling)
    return {key: spelling for key, (_, spelling) in best.items()}


def _separate_clashes(paths: dict[int, _Path], shown: dict[int, _Track], renderer: _Renderer) -> None:
    """Renames tracks in place so that every path is distinct (see the module docstring)."""
    clashing = {path for path, count in Counter(paths.values()).items() if count > 1}
    if not clashing:
        return
    by_path: dict[_Path, list[_Track]] = {}
    for track_id, path in paths.items():
        if path in clashing:
            by_path.setdefault(path, []).append(shown[track_id])
    taken = set(paths.values())
    for path in sorted(clashing):
        _number_others(sorted(by_path[path], key=_rank), renderer, taken, paths)


def _rank(track: _Track) -> tuple[int, int]:
    """The order in which clashing tracks get their names: the first keeps its own."""
    return (track.entry.origin_priority, track.entry.track_id)


def _number_others(
    group: list[_Track], renderer: _Renderer, taken: set[_Path], paths: dict[int, _Path]
) -> None:
    """Gives each track of a clashing group after the first the next `` (n)`` name that no track has.

    Numbers go up through the group (never back), so a large group takes linear time.
    """
    number = 2
    for track in group[1:]:
        while (path := renderer.path(track, f" ({number})")) in taken:
            number += 1
        taken.add(path)
        paths[track.entry.track_id] = path
        number += 1
