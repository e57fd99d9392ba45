"""What a terminal can show: which streams may be redrawn, widths of wide characters, and shortening a
path to a width by its middle."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicfs.daemon import terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("term", "tty", "redraws"),
    [("xterm", True, True), ("dumb", True, False), ("", True, True), ("xterm", False, False)],
)
def test_only_a_terminal_that_is_not_dumb_is_redrawn(
    monkeypatch: pytest.MonkeyPatch, term: str, tty: bool, redraws: bool
) -> None:
    monkeypatch.setenv("TERM", term)
    assert terminal.redraws(_Terminal() if tty else io.StringIO()) is redraws


def test_wide_characters_take_two_columns_and_combining_marks_none() -> None:
    assert terminal.cells("山田太郎") == 8
    assert terminal.cells("Bjo\u0308rk") == 5


def test_a_long_path_keeps_both_ends() -> None:
    path = "/srv/a-folder-with-a-rather-long-name/shared by the whole family/collection/Music"
    short = terminal.shorten(path, 40)
    assert terminal.cells(short) == 40 and short.startswith("/srv/a-folder") and short.endswith("/Music")
    assert terminal.shorten(path, len(path)) == path


@given(st.text(min_size=0, max_size=60), st.integers(min_value=0, max_value=70))
def test_shortened_text_never_exceeds_the_width(text: str, width: int) -> None:
    short = terminal.shorten(text, width)
    assert terminal.cells(short) <= max(width, 0)
    if terminal.cells(text) <= width:
        assert short == text
