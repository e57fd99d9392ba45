"""Tests of musicfs.tree.template: parsing, checking and rendering path templates."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicfs.core.errors import ConfigError
from musicfs.tree.sanitize import SLASH_REPLACEMENT, sanitize_component
from musicfs.tree.template import DEFAULT_TEMPLATE, FIELDS, NUMBER_FIELDS, FieldValue, Template

DEFAULT = Template.parse(DEFAULT_TEMPLATE)
FULL: dict[str, FieldValue] = {
    "albumartist": "Pink Floyd",
    "artist": "Pink Floyd",
    "album": "The Wall",
    "title": "Hey You",
    "genre": "Rock",
    "year": 1979,
    "track": 1,
    "tracktotal": 13,
    "disc": 2,
    "disctotal": 2,
    "ext": "flac",
}


def render(template: str, **fields: FieldValue) -> list[str]:
    return Template.parse(template).render(fields)


def test_default_template_with_every_field() -> None:
    assert DEFAULT.render(FULL) == ["Pink Floyd", "The Wall (1979)", "2-01 Hey You.flac"]


def test_missing_year_leaves_no_empty_parentheses() -> None:
    assert DEFAULT.render({**FULL, "year": None})[1] == "The Wall"


def test_missing_track_and_disc_leave_no_stray_characters() -> None:
    assert DEFAULT.render({**FULL, "track": None, "disc": None})[2] == "Hey You.flac"
    assert DEFAULT.render({**FULL, "disc": None})[2] == "01 Hey You.flac"


def test_absent_key_and_blank_text_count_as_missing() -> None:
    fields = {key: value for key, value in FULL.items() if key != "year"}
    assert DEFAULT.render(fields)[1] == "The Wall"
    assert render("{album}[ - {genre}]/{title}", album="A", genre=" \x00 ", title="T", ext="mp3") == [
        "A",
        "T.mp3",
    ]


def test_zero_padding() -> None:
    assert render("{title}/{track:03}", title="T", track=7, ext="flac") == ["T", "007.flac"]
    assert render("{title}/{track:02}", title="T", track=123, ext="flac") == ["T", "123.flac"]
    assert render("{title}/{track:02}", title="T", track=0, ext="flac") == ["T", "00.flac"]


def test_value_slashes_never_make_folders() -> None:
    assert DEFAULT.render({**FULL, "albumartist": "AC/DC", "title": "a/b"}) == [
        f"AC{SLASH_REPLACEMENT}DC",
        "The Wall (1979)",
        f"2-01 a{SLASH_REPLACEMENT}b.flac",
    ]


def test_values_are_cleaned_of_control_characters_and_surrogates() -> None:
    assert render("{title}", title="a\x00b\udcff", ext="mp3") == ["a b\ufffd.mp3"]


def test_extension_is_appended_when_not_written() -> None:
    assert render("{artist}/{title}", artist="A", title="T", ext="ogg") == ["A", "T.ogg"]


def test_missing_extension_adds_no_dot() -> None:
    assert render("{title}.{ext}", title="T", ext="") == ["T"]
    assert render("{title}.{ext}", title="T") == ["T"]


def test_ext_may_also_appear_elsewhere() -> None:
    assert render("{ext}/{title} ({ext})", title="T", ext="mp3") == ["mp3", "T (mp3).mp3"]


def test_escapes_give_literal_brackets() -> None:
    assert render(r"{artist}/\[{year}\] {title}", artist="A", year=1999, title="T", ext="mp3") == [
        "A",
        "[1999] T.mp3",
    ]
    assert render(r"{title}\{\}\\", title="T", ext="mp3") == ["T{}\\.mp3"]


def test_render_split_parts() -> None:
    assert DEFAULT.render_folders(FULL) == ("Pink Floyd", "The Wall (1979)")
    assert DEFAULT.render_file(FULL) == ("2-01 Hey You", "flac")


def test_folder_fields() -> None:
    assert DEFAULT.folder_fields == ("album", "albumartist", "year")
    assert Template.parse("{title}").folder_fields == ()


def test_constant_folders_are_shown_as_written() -> None:
    assert render("Library/{albumartist}/{title}", albumartist="A", title="T", ext="flac") == [
        "Library",
        "A",
        "T.flac",
    ]
    assert render("Music/Lossless/{title}", title="T", ext="flac") == ["Music", "Lossless", "T.flac"]
    assert render(r"{genre}/\[Live\] Sets/{title}", genre="Rock", title="T", ext="mp3") == [
        "Rock",
        "[Live] Sets",
        "T.mp3",
    ]
    assert render("Bücher und Hörspiele/{title}", title="T", ext="mp3")[0] == "Bücher und Hörspiele"


def test_constant_folders_are_normalised_to_nfc() -> None:
    decomposed = "Bu\u0308cher"
    assert render(f"{decomposed}/{{title}}", title="T", ext="mp3")[0] == "B\u00fccher"


def test_constant_folders_add_no_folder_fields() -> None:
    template = Template.parse("Library/{albumartist}/{album}/{title}")
    assert template.folder_fields == ("album", "albumartist")
    assert template.render_folders({"albumartist": "A", "album": "B"}) == ("Library", "A", "B")


def test_missing_mandatory_field_renders_empty() -> None:
    assert render("{genre}/{title}", title="T", ext="mp3") == ["", "T.mp3"]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("{foo}/{title}", "unknown field {foo}"),
        ("{}", "has no name"),
        ("{title", "unbalanced '{'"),
        ("{title}}", "unbalanced '}'"),
        ("[{year}", "never closed"),
        ("{year}]{title}", "unbalanced ']'"),
        ("[[{year}]]{title}", "nested"),
        ("[{year}/{title}]", "'/' at position 7 inside"),
        ("[ - ]{title}", "has no field"),
        ("a//{title}", "empty component at position 2"),
        ("{artist}//{title}", "empty component at position 9"),
        ("/{title}", "empty component at position 0"),
        ("{title}/", "empty component at position 8"),
        ("Music", "the file name needs a field"),
        ("Music/Library", "component 'Library' has no field outside [...]; the file name needs a field"),
        ("Music/.{ext}", "besides .{ext}"),
        ("Music[ {genre}]/{title}", "component 'Music[ {genre}]' has no field outside [...]"),
        ("./{title}", "constant folder '.' is not a valid name as written (it would be shown as '_')"),
        ("../{title}", "constant folder '..' is not a valid name"),
        (".hidden/{title}", "constant folder '.hidden' is not a valid name as written"),
        (" Music/{title}", "constant folder ' Music' is not a valid name as written"),
        ("Music /{title}", "it would be shown as 'Music'"),
        ("M" * 256 + "/{title}", "is not a valid name as written"),
        ("[{genre}]/{title}", "has no field outside"),
        ("{artist}/.{ext}", "besides .{ext}"),
        ("{title:02}", "bad format"),
        ("{track:x}", "bad format"),
        ("{track:2}", "bad format"),
        (r"\q{title}", "bad escape"),
        ("{title}\\", "lone"),
    ],
)
def test_bad_templates_are_refused_with_one_line(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Template.parse(template)
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


TEMPLATE_PIECES = ["{title}", "{track:02}", "{year}", "{ext}", ".{ext}", "{foo}", "\\[", "[{disc}-]"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([*"{}[]/\\:.a 0", *TEMPLATE_PIECES, *sorted(FIELDS)]), max_size=20).map("".join)
)
def test_parse_either_succeeds_or_raises_config_error(text: str) -> None:
    try:
        template = Template.parse(text)
    except ConfigError:
        return
    assert template.render({})  # a parsed template always renders


def _literal(text: str) -> str:
    """`text` escaped so that a template shows it literally."""
    return "".join("\\" + char if char in "{}[]\\" else char for char in text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=40))
def test_a_constant_folder_is_refused_or_shown_exactly_as_written(text: str) -> None:
    try:
        template = Template.parse(f"{_literal(text)}/{{title}}")
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    shown = template.render({})[0]
    assert shown == unicodedata.normalize("NFC", text)
    assert sanitize_component(shown) == shown  # what layout makes of it changes nothing


FIELD_VALUES = st.fixed_dictionaries(
    {},
    optional={
        name: (st.none() | st.integers(0, 10**6)) if name in NUMBER_FIELDS else (st.none() | st.text())
        for name in FIELDS
    },
)


@settings(max_examples=200, deadline=None)
@given(FIELD_VALUES)
def test_default_template_always_gives_three_components(fields: dict[str, FieldValue]) -> None:
    components = DEFAULT.render(fields)
    assert len(components) == 3
    assert not any("/" in component for component in components)
