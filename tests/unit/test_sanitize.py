"""Tests of musicfs.tree.sanitize: every text becomes one valid path component."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicfs.tree.sanitize import (
    LEADING_DOT_REPLACEMENT,
    MAX_EXT_BYTES,
    MAX_NAME_BYTES,
    SLASH_REPLACEMENT,
    clean_text,
    sanitize_component,
    sanitize_piece,
)

ANY_CHAR = st.characters(exclude_categories=())  # surrogates and control characters included
TRICKY_CHAR = st.sampled_from(
    ["/", "\x00", "\n", "\x7f", "\x85", "\udcff", "\ud800", ".", " ", "\u0301", "é"]
)
ANY_TEXT = st.one_of(
    st.text(ANY_CHAR),
    st.text(st.one_of(ANY_CHAR, TRICKY_CHAR)),
    st.text(ANY_CHAR, min_size=200, max_size=400),
    st.builds(
        lambda piece, count: piece * count,
        st.sampled_from(["é", "e\u0301", "😀", "a ", "./", "x"]),
        st.integers(1, 300),
    ),
)
EXT = st.one_of(st.none(), st.sampled_from(["flac", "mp3", "", " ", "/"]), st.text(ANY_CHAR, max_size=40))
SETTINGS = settings(max_examples=200, deadline=None)


def assert_valid(name: str) -> None:
    """The properties every component must have."""
    assert name not in ("", ".", "..")
    assert "/" not in name
    assert not any(unicodedata.category(char) == "Cc" for char in name)
    assert unicodedata.is_normalized("NFC", name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES  # strict: fails on any surrogate
    assert name == name.strip()
    assert not name.startswith(".")


@SETTINGS
@given(ANY_TEXT, EXT)
def test_any_text_gives_a_valid_component(name: str, ext: str | None) -> None:
    assert_valid(sanitize_component(name, ext=ext))


@SETTINGS
@given(ANY_TEXT, st.sampled_from(["flac", "mp3", "ogg", "m4a"]), st.sampled_from(["", " (2)", " (123)"]))
def test_a_normal_extension_and_suffix_are_kept(name: str, ext: str, suffix: str) -> None:
    result = sanitize_component(name, ext=ext, suffix=suffix)
    assert_valid(result)
    assert result.endswith(f"{suffix}.{ext}")


@SETTINGS
@given(ANY_TEXT)
def test_sanitizing_twice_changes_nothing(name: str) -> None:
    once = sanitize_component(name)
    assert sanitize_component(once) == once


@SETTINGS
@given(ANY_TEXT)
def test_sanitize_piece_replaces_one_for_one(text: str) -> None:
    piece = sanitize_piece(text)
    assert len(piece) == len(text)
    assert "/" not in piece
    assert not any(unicodedata.category(char) in ("Cc", "Cs") for char in piece)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AC/DC", f"AC{SLASH_REPLACEMENT}DC"),
        ("a\x00b", "a b"),
        ("Line one\nLine two", "Line one Line two"),
        ("tab\there", "tab here"),
        ("del\x7fc1\x85", "del c1"),
        ("bad \udcff byte", "bad \ufffd byte"),
        ("e\u0301", "\u00e9"),  # NFC
        ("  padded \t", "padded"),
        ("", "_"),
        ("   ", "_"),
        ("\x00\x01", "_"),
        (".", "_"),
        ("..", "_"),
        (" .. ", "_"),
        ("...And Justice for All", LEADING_DOT_REPLACEMENT * 3 + "And Justice for All"),
        (".hidden", LEADING_DOT_REPLACEMENT + "hidden"),
        ("...", LEADING_DOT_REPLACEMENT * 3),
        ("Vol.", "Vol."),
        ("Hello...", "Hello..."),
    ],
)
def test_examples(name: str, expected: str) -> None:
    assert sanitize_component(name) == expected


def test_fallback_is_used_for_an_empty_stem() -> None:
    assert sanitize_component("", fallback="Unknown") == "Unknown"
    assert sanitize_component(" ", ext="flac") == "_.flac"


@pytest.mark.parametrize("fallback", ["", ".", "..", ".x", "a/b", " x", "x\x00", "\udcff", "x" * 40])
def test_bad_fallback_is_refused(fallback: str) -> None:
    with pytest.raises(ValueError, match="fallback"):
        sanitize_component("name", fallback=fallback)


@pytest.mark.parametrize("suffix", ["/", "é", "\n", "x" * 40])
def test_bad_suffix_is_refused(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        sanitize_component("name", suffix=suffix)


def test_extension_is_joined_with_a_dot() -> None:
    assert sanitize_component("01 Title", ext="flac") == "01 Title.flac"
    assert sanitize_component("01 Title", ext="") == "01 Title"
    assert sanitize_component("01 Title", ext=" ") == "01 Title"
    assert sanitize_component("Title", ext="flac", suffix=" (2)") == "Title (2).flac"


def test_long_ascii_name_is_cut_to_255_bytes() -> None:
    assert sanitize_component("x" * 1000) == "x" * MAX_NAME_BYTES


def test_truncation_keeps_the_extension() -> None:
    result = sanitize_component("x" * 1000, ext="flac")
    assert result == "x" * (MAX_NAME_BYTES - 5) + ".flac"


def test_truncation_keeps_suffix_and_extension() -> None:
    result = sanitize_component("é" * 500, ext="flac", suffix=" (2)")
    assert result.endswith("é (2).flac")
    assert len(result.encode()) <= MAX_NAME_BYTES


def test_truncation_cuts_on_a_character_boundary() -> None:
    result = sanitize_component("😀" * 100)  # 4 bytes each
    assert result == "😀" * 63  # 252 bytes; a 64th would make 256


def test_truncation_strips_a_trailing_space_it_exposes() -> None:
    name = "x" * 254 + " y"
    assert sanitize_component(name) == "x" * 254


def test_truncation_inside_a_combining_sequence_stays_nfc() -> None:
    # "q" has no precomposed forms: NFC keeps the marks apart, and the cut may fall between them.
    name = "q\u0323\u0302" * 100
    result = sanitize_component(name)
    assert unicodedata.is_normalized("NFC", result)
    assert len(result.encode()) <= MAX_NAME_BYTES


def test_an_absurd_extension_is_cut() -> None:
    result = sanitize_component("t", ext="e" * 100)
    assert result == "t." + "e" * MAX_EXT_BYTES


def test_clean_text_strips_and_normalises() -> None:
    assert clean_text("  A/B\te\u0301 ") == f"A{SLASH_REPLACEMENT}B \u00e9"
    assert clean_text("\x00") == ""
