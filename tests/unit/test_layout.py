"""Tests of musicfs.tree.layout: resolved fields, multi-disc albums, copies across origins, clashes."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicfs.core.types import TagSet, TrackEntry
from musicfs.tree.layout import UNKNOWN_ALBUM, UNKNOWN_ARTIST, VARIOUS_ARTISTS, Album, albums, layout
from musicfs.tree.sanitize import MAX_NAME_BYTES, SLASH_REPLACEMENT
from musicfs.tree.template import DEFAULT_TEMPLATE, Template

DEFAULT = Template.parse(DEFAULT_TEMPLATE)


def entry(track_id: int, priority: int = 0, stem: str = "file", ext: str = "flac", **tags: Any) -> TrackEntry:
    """A track entry with the given tags."""
    return TrackEntry(track_id, priority, stem, ext, TagSet(**tags))


def paths(entries: Iterable[TrackEntry], template: Template = DEFAULT) -> dict[int, str]:
    """The layout with paths joined by '/', for readable assertions."""
    return {track_id: "/".join(parts) for track_id, parts in layout(entries, template).items()}


# Fields


def test_untagged_track_goes_to_unknown_artist_and_album_under_its_stem() -> None:
    assert paths([entry(1, stem="track01")]) == {1: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/track01.flac"}


def test_album_artist_falls_back_to_artist() -> None:
    assert paths([entry(1, artist="Nina Simone", album="Pastel Blues", title="Sinnerman", track=9)]) == {
        1: "Nina Simone/Pastel Blues/09 Sinnerman.flac"
    }


def test_album_artist_wins_over_artist() -> None:
    result = paths([entry(1, artist="Guest", albumartist="Host", album="A", title="T")])
    assert result == {1: "Host/A/T.flac"}


def test_compilation_goes_to_various_artists() -> None:
    result = paths(
        [
            entry(1, artist="One", album="Hits", title="A", compilation=True),
            entry(2, artist="Two", album="Hits", title="B", compilation=True),
        ]
    )
    assert result == {1: f"{VARIOUS_ARTISTS}/Hits/A.flac", 2: f"{VARIOUS_ARTISTS}/Hits/B.flac"}


def test_explicit_album_artist_wins_over_compilation_flag() -> None:
    assert paths([entry(1, albumartist="DJ", album="Mix", title="A", compilation=True)]) == {
        1: "DJ/Mix/A.flac"
    }


def test_year_in_parentheses_only_when_known() -> None:
    result = paths(
        [entry(1, artist="A", album="X", title="T", year=1999), entry(2, artist="A", album="Y", title="T")]
    )
    assert result == {1: "A/X (1999)/T.flac", 2: "A/Y/T.flac"}


def test_blank_tags_count_as_missing() -> None:
    assert paths([entry(1, stem="s", artist="\x00", album=" \n", title="\t")]) == {
        1: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/s.flac"
    }


def test_slash_in_tags_never_makes_a_folder() -> None:
    result = layout([entry(1, artist="AC/DC", album="Back/Black", title="Hells/Bells")], DEFAULT)
    assert result == {
        1: (
            f"AC{SLASH_REPLACEMENT}DC",
            f"Back{SLASH_REPLACEMENT}Black",
            f"Hells{SLASH_REPLACEMENT}Bells.flac",
        )
    }


def test_non_utf8_stem_becomes_valid_text() -> None:
    assert paths([entry(1, stem="caf\udce9")]) == {1: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/caf\ufffd.flac"}


def test_file_without_extension_gets_no_dot() -> None:
    assert paths([entry(1, stem="README", ext="")]) == {1: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/README"}


def test_missing_mandatory_field_gives_the_fallback_name() -> None:
    assert paths([entry(1, title="T")], Template.parse("{genre}/{title}")) == {1: "_/T.flac"}


def test_constant_folder_holds_every_track() -> None:
    template = Template.parse("Library/{albumartist}/{title}")
    result = paths([entry(1, albumartist="A", title="T"), entry(2, title="U"), entry(3, stem="x")], template)
    assert result == {
        1: "Library/A/T.flac",
        2: f"Library/{UNKNOWN_ARTIST}/U.flac",
        3: f"Library/{UNKNOWN_ARTIST}/x.flac",
    }


def test_spelling_of_artist_and_album_is_unified() -> None:
    result = paths(
        [
            entry(1, artist="ABBA", album="Arrival", title="A"),
            entry(2, artist="ABBA", album="ARRIVAL", title="B"),
            entry(3, artist="Abba", album="arrival", title="C"),
        ]
    )
    assert result == {1: "ABBA/ARRIVAL/A.flac", 2: "ABBA/ARRIVAL/B.flac", 3: "ABBA/ARRIVAL/C.flac"}


def test_long_title_is_cut_but_keeps_track_number_and_extension() -> None:
    name = layout([entry(1, artist="A", album="B", title="é" * 400, track=3)], DEFAULT)[1][-1]
    assert name.startswith("03 éé")
    assert name.endswith("é.flac")
    assert len(name.encode()) <= MAX_NAME_BYTES


# Multi-disc albums


def test_disc_prefix_only_for_multi_disc_albums() -> None:
    result = paths(
        [
            entry(1, artist="A", album="Double", title="One", disc=1, track=1),
            entry(2, artist="A", album="Double", title="Two", disc=2, track=1),
            entry(3, artist="A", album="Single", title="Three", disc=1, track=1, disctotal=1),
        ]
    )
    assert result == {1: "A/Double/1-01 One.flac", 2: "A/Double/2-01 Two.flac", 3: "A/Single/01 Three.flac"}


def test_disctotal_above_one_makes_an_album_multi_disc() -> None:
    result = paths(
        [
            entry(1, artist="A", album="Set", title="One", disc=1, disctotal=2, track=1),
            entry(2, artist="A", album="Set", title="Two", disc=1, track=2),
            entry(3, artist="A", album="Set", title="Three", track=3),
        ]
    )
    assert result == {1: "A/Set/1-01 One.flac", 2: "A/Set/1-02 Two.flac", 3: "A/Set/03 Three.flac"}


def test_album_grouping_for_discs_ignores_case() -> None:
    result = paths(
        [
            entry(1, artist="Pink Floyd", album="The Wall", title="In the Flesh?", disc=1, track=1),
            entry(2, artist="Pink Floyd", album="The Wall", title="The Thin Ice", disc=1, track=2),
            entry(3, artist="PINK FLOYD", album="the wall", title="Hey You", disc=2, track=1),
        ]
    )
    assert result == {
        1: "Pink Floyd/The Wall/1-01 In the Flesh?.flac",
        2: "Pink Floyd/The Wall/1-02 The Thin Ice.flac",
        3: "Pink Floyd/The Wall/2-01 Hey You.flac",
    }


def test_spelling_tie_goes_to_the_smallest_string() -> None:
    result = paths([entry(1, artist="Pink Floyd", title="A"), entry(2, artist="PINK FLOYD", title="B")])
    assert result == {1: f"PINK FLOYD/{UNKNOWN_ALBUM}/A.flac", 2: f"PINK FLOYD/{UNKNOWN_ALBUM}/B.flac"}


# Copies across origins


def test_copy_in_a_preferred_origin_wins() -> None:
    tags: dict[str, Any] = {"artist": "A", "album": "B", "title": "T", "track": 1}
    assert layout([entry(5, 1, **tags), entry(9, 0, stem="other", **tags)], DEFAULT) == {
        9: ("A", "B", "01 T.flac")
    }


def test_copies_match_case_insensitively() -> None:
    result = paths(
        [entry(1, 1, artist="a", album="b", title="song"), entry(2, 0, artist="A", album="B", title="SONG")]
    )
    assert list(result) == [2]


def test_copies_need_the_same_extension() -> None:
    result = paths(
        [entry(1, 0, ext="flac", artist="A", title="T"), entry(2, 1, ext="mp3", artist="A", title="T")]
    )
    assert result == {1: f"A/{UNKNOWN_ALBUM}/T.flac", 2: f"A/{UNKNOWN_ALBUM}/T.mp3"}


def test_copies_need_the_same_track_number() -> None:
    result = paths([entry(1, 0, artist="A", title="T", track=1), entry(2, 1, artist="A", title="T", track=2)])
    assert sorted(result) == [1, 2]


def test_two_files_in_one_origin_are_both_shown() -> None:
    result = paths(
        [
            entry(1, 0, artist="A", title="T"),
            entry(2, 0, artist="A", title="T"),
            entry(3, 1, artist="A", title="T"),
        ]
    )
    assert result == {1: f"A/{UNKNOWN_ALBUM}/T.flac", 2: f"A/{UNKNOWN_ALBUM}/T (2).flac"}


def test_untagged_tracks_are_never_merged() -> None:
    result = paths([entry(1, 0, stem="01"), entry(2, 1, stem="01")])
    assert result == {
        1: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/01.flac",
        2: f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}/01 (2).flac",
    }


# Clashes


def test_clashes_get_numbers_in_priority_then_id_order() -> None:
    result = paths([entry(7, 0, stem="x"), entry(3, 1, stem="x"), entry(5, 0, stem="x")])
    folder = f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}"
    assert result == {5: f"{folder}/x.flac", 7: f"{folder}/x (2).flac", 3: f"{folder}/x (3).flac"}


def test_numbered_name_skips_a_name_another_track_has() -> None:
    result = paths([entry(1, stem="x"), entry(2, stem="x"), entry(3, stem="x (2)")])
    folder = f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}"
    assert result == {1: f"{folder}/x.flac", 2: f"{folder}/x (3).flac", 3: f"{folder}/x (2).flac"}


def test_names_equal_after_nfc_clash() -> None:
    result = paths([entry(1, stem="caf\u00e9"), entry(2, stem="cafe\u0301")])
    folder = f"{UNKNOWN_ARTIST}/{UNKNOWN_ALBUM}"
    assert result == {1: f"{folder}/caf\u00e9.flac", 2: f"{folder}/caf\u00e9 (2).flac"}


def test_names_differing_in_case_do_not_clash() -> None:
    assert len(set(paths([entry(1, stem="Song"), entry(2, stem="song")]).values())) == 2


def test_numbered_long_name_still_fits_and_keeps_the_extension() -> None:
    result = layout([entry(1, stem="x" * 300), entry(2, stem="x" * 300)], DEFAULT)
    assert result[1][-1] == "x" * (MAX_NAME_BYTES - 5) + ".flac"
    assert result[2][-1] == "x" * (MAX_NAME_BYTES - 9) + " (2).flac"


def test_names_cut_to_the_same_text_clash() -> None:
    result = layout([entry(1, stem="x" * 300 + "a"), entry(2, stem="x" * 300 + "b")], DEFAULT)
    assert result[1] != result[2]


def test_a_large_clashing_group_is_numbered_in_order() -> None:
    count = 2000
    result = layout([entry(track_id, stem="01") for track_id in range(count)], DEFAULT)
    names = [result[track_id][-1] for track_id in range(count)]
    assert names == ["01.flac", *(f"01 ({number}).flac" for number in range(2, count + 1))]


def test_duplicate_track_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="track_id"):
        layout([entry(1), entry(1, stem="other")], DEFAULT)


def test_result_is_ordered_by_track_id() -> None:
    assert list(layout([entry(3, stem="c"), entry(1, stem="a"), entry(2, stem="b")], DEFAULT)) == [1, 2, 3]


# Properties

ANY_CHAR = st.characters(exclude_categories=())  # surrogates and control characters included
TEXT = st.one_of(
    st.sampled_from(["A", "a", "B", "AC/DC", ".", "..", " ", "\x00", "caf\u00e9", "cafe\u0301", "x (2)"]),
    st.text(ANY_CHAR, max_size=12),
    st.builds(
        lambda piece, count: piece * count, st.sampled_from(["é", "x", "😀", "a/"]), st.integers(100, 300)
    ),
)
NUMBER = st.none() | st.integers(0, 3)
TAGS = st.builds(
    TagSet,
    artist=st.none() | TEXT,
    albumartist=st.none() | TEXT,
    album=st.none() | TEXT,
    title=st.none() | TEXT,
    genre=st.none() | TEXT,
    year=st.none() | st.integers(1900, 2030),
    track=NUMBER,
    tracktotal=NUMBER,
    disc=NUMBER,
    disctotal=NUMBER,
    compilation=st.booleans(),
)
ENTRY = st.builds(
    TrackEntry,
    track_id=st.integers(0, 10**6),
    origin_priority=st.integers(0, 2),
    stem=TEXT,
    ext=st.sampled_from(["flac", "mp3", ""]) | st.text(ANY_CHAR, max_size=4),
    tags=TAGS | st.just(TagSet()),
)


@st.composite
def collections(draw: st.DrawFn) -> list[TrackEntry]:
    """Entries, some of them copies (same tags, another stem) of others, in any origin."""
    entries = draw(st.lists(ENTRY, max_size=20, unique_by=lambda item: item.track_id))
    next_id = max((item.track_id for item in entries), default=0) + 1
    for offset in range(draw(st.integers(0, 10)) if entries else 0):
        original = draw(st.sampled_from(entries))
        priority = draw(st.integers(0, 2))
        entries.append(
            replace(original, track_id=next_id + offset, origin_priority=priority, stem=draw(TEXT))
        )
    return entries


ENTRIES = collections()
TEMPLATES = st.sampled_from(
    [
        DEFAULT_TEMPLATE,
        "{title}",
        "{genre}/{artist} - {title}",
        "{albumartist}/[{year} - ]{album}/{disc}.{track}",
        "Library/{albumartist}/Lossless/{title}",
    ]
).map(Template.parse)
SETTINGS = settings(max_examples=100, deadline=None)


def assert_valid(name: str) -> None:
    assert name not in ("", ".", "..")
    assert "/" not in name and "\x00" not in name
    assert not any(unicodedata.category(char) == "Cc" for char in name)
    assert unicodedata.is_normalized("NFC", name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES  # strict: fails on any surrogate


@SETTINGS
@given(ENTRIES, TEMPLATES)
def test_every_component_is_valid_and_every_path_distinct(
    entries: list[TrackEntry], template: Template
) -> None:
    result = layout(entries, template)
    for parts in result.values():
        for name in parts:
            assert_valid(name)
    assert len(set(result.values())) == len(result)


@SETTINGS
@given(ENTRIES, TEMPLATES)
def test_no_file_is_also_a_folder(entries: list[TrackEntry], template: Template) -> None:
    result = layout(entries, template)
    folders = {parts[:depth] for parts in result.values() for depth in range(1, len(parts))}
    assert not folders & set(result.values())


@SETTINGS
@given(ENTRIES, TEMPLATES, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_entry_order(
    entries: list[TrackEntry], template: Template, rnd: random.Random
) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert list(layout(shuffled, template).items()) == list(layout(entries, template).items())


@SETTINGS
@given(ENTRIES)
def test_only_copies_from_a_worse_origin_are_hidden(entries: list[TrackEntry]) -> None:
    shown = layout(entries, DEFAULT)
    best = min((item.origin_priority for item in entries), default=0)
    for item in entries:
        if item.origin_priority == best or item.tags.title is None:
            assert item.track_id in shown
        elif item.track_id not in shown:
            assert any(
                other.origin_priority < item.origin_priority for other in entries if other.track_id in shown
            )


# Albums are one folder (issue 13.1)


def _kind_of_blue(*years: int | None) -> list[TrackEntry]:
    titles = ["So What", "Freddie Freeloader", "Blue in Green", "All Blues", "Flamenco Sketches"]
    return [
        entry(n, albumartist="Miles Davis", album="Kind of Blue", title=titles[n - 1], track=n, year=year)
        for n, year in enumerate(years, start=1)
    ]


def test_a_track_without_a_year_joins_its_album() -> None:
    result = paths(_kind_of_blue(1959, 1959, 1959, 1959, None))
    assert {p.rsplit("/", 1)[0] for p in result.values()} == {"Miles Davis/Kind of Blue (1959)"}


def test_a_track_with_a_stray_year_joins_its_album_under_the_most_common_year() -> None:
    result = paths(_kind_of_blue(1959, 1997, 1959, 1959, 1959))
    assert {p.rsplit("/", 1)[0] for p in result.values()} == {"Miles Davis/Kind of Blue (1959)"}


def test_a_tie_of_years_goes_to_the_earliest() -> None:
    result = paths(_kind_of_blue(1997, 1959, None, 1959, 1997))
    assert {p.rsplit("/", 1)[0] for p in result.values()} == {"Miles Davis/Kind of Blue (1959)"}


def test_two_editions_with_the_same_track_numbers_stay_apart_by_year() -> None:
    original = _kind_of_blue(1959, 1959, 1959)
    remaster = [replace(e, track_id=e.track_id + 10, tags=replace(e.tags, year=1997)) for e in original]
    result = paths(
        [*original, *remaster, entry(99, albumartist="Miles Davis", album="Kind of Blue", title="X")]
    )
    folders = {track_id: p.rsplit("/", 1)[0] for track_id, p in result.items()}
    assert {folders[n] for n in (1, 2, 3)} == {"Miles Davis/Kind of Blue (1959)"}
    assert {folders[n] for n in (11, 12, 13)} == {"Miles Davis/Kind of Blue (1997)"}
    assert folders[99] == "Miles Davis/Kind of Blue (1959)"  # no year: the most common (ties: earliest)


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.sampled_from([1959, 1997, 2009])), min_size=1, max_size=8))
def test_an_album_without_repeated_track_numbers_is_always_one_folder(years: list[int | None]) -> None:
    titles = [f"Song {n}" for n in range(len(years))]
    entries = [
        entry(n, albumartist="A", album="B", title=titles[n], track=n + 1, year=year)
        for n, year in enumerate(years)
    ]
    assert len({p.rsplit("/", 1)[0] for p in paths(entries).values()}) == 1


# Releases: MusicBrainz album ids (issue 13.1)

FIRST = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
SECOND = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


def _hits(release: str | None, year: int | None, first_id: int, count: int = 2) -> list[TrackEntry]:
    return [
        entry(
            first_id + n,
            albumartist="ABBA",
            album="Greatest Hits",
            title=f"Song {n}",
            track=n + 1,
            year=year,
            mb_albumid=release,
        )
        for n in range(count)
    ]


def _folders(result: dict[int, str]) -> dict[int, str]:
    return {track_id: p.rsplit("/", 1)[0] for track_id, p in result.items()}


def test_two_releases_of_one_name_and_year_are_two_folders_told_apart_by_their_ids() -> None:
    folders = _folders(paths([*_hits(FIRST, 1992, 1), *_hits(SECOND, 1992, 11, count=3)]))
    assert {folders[n] for n in (1, 2)} == {"ABBA/Greatest Hits [11111111] (1992)"}
    assert {folders[n] for n in (11, 12, 13)} == {"ABBA/Greatest Hits [22222222] (1992)"}


def test_releases_of_different_years_need_no_more_than_the_template_year() -> None:
    folders = _folders(paths([*_hits(FIRST, 1975, 1), *_hits(SECOND, 1992, 11)]))
    assert set(folders.values()) == {"ABBA/Greatest Hits (1975)", "ABBA/Greatest Hits (1992)"}
    without_year = Template.parse("{albumartist}/{album}/{track:02} {title}.{ext}")
    folders = _folders(paths([*_hits(FIRST, 1975, 1), *_hits(SECOND, 1992, 11)], without_year))
    assert set(folders.values()) == {"ABBA/Greatest Hits [1975]", "ABBA/Greatest Hits [1992]"}


def test_a_track_without_a_release_id_joins_the_release_of_its_name_with_most_tracks() -> None:
    untagged = entry(99, albumartist="abba", album="GREATEST HITS", title="Loose", track=9, year=1992)
    folders = _folders(paths([*_hits(FIRST, 1992, 1), *_hits(SECOND, 1992, 11, count=3), untagged]))
    assert folders[99] == folders[11]
    alone = _folders(
        paths([*_hits(FIRST, None, 1), replace(untagged, tags=replace(untagged.tags, year=None))])
    )
    assert set(alone.values()) == {"ABBA/Greatest Hits"}  # one release: no suffix, one folder


def test_release_grouping_does_not_depend_on_the_order_of_the_entries() -> None:
    entries = [
        *_hits(FIRST, 1992, 1),
        *_hits(SECOND, 1992, 11),
        entry(99, albumartist="ABBA", album="Greatest Hits"),
    ]
    expected = paths(entries)
    for seed in range(5):
        random.Random(seed).shuffle(entries)
        assert paths(entries) == expected


def test_albums_tells_what_the_layout_decided_for_each_track() -> None:
    entries = [
        *_hits(FIRST, 1992, 1),
        *_hits(SECOND, 1992, 11),
        entry(99, albumartist="ABBA", album="Greatest Hits"),
    ]
    decided = albums(entries, DEFAULT)
    assert decided[1] == Album("ABBA", "Greatest Hits [11111111]", 1992, FIRST)
    # A tie of releases (two tracks each): the untagged track joins the smallest id.
    assert decided[99] == decided[1]
    assert decided[11] == Album("ABBA", "Greatest Hits [22222222]", 1992, SECOND)
    assert paths(entries)[99].rsplit("/", 1)[0] == "ABBA/Greatest Hits [11111111] (1992)"
