"""Making text safe to use as one path component (a file or folder name) of the mounted tree.

Owns: the character-level cleaning of tag values (`sanitize_piece`, `clean_text`) and the complete
name rules (`sanitize_component`).
Concurrency: pure functions over immutable strings; the only state is two small bounded memos
(`functools.lru_cache`, thread-safe) of extension cleaning and argument checks. Safe from any thread.

The rules of `sanitize_component`, applied in this order:

1. ``/`` becomes U+2215 DIVISION SLASH: it reads like a slash but separates nothing.
2. Control characters (C0 including NUL, DEL, C1) become a space, so ``"A\\nB"`` reads ``"A B"``.
3. Lone surrogates (what ``surrogateescape`` makes of a name that is not UTF-8) become U+FFFD.
4. Unicode NFC, then surrounding whitespace is stripped.
5. An empty name, ``.`` and ``..`` become the fallback.
6. Leading dots become U+2024 ONE DOT LEADER, so the name looks the same but is not a
   hidden file (``...And Justice for All`` stays visible). Trailing dots are kept (``Vol.``,
   ``Jr.``): Linux allows them; trailing spaces are already gone by rule 4.
7. The name is cut to at most 255 bytes of UTF-8 on a character boundary; the ``suffix`` and the
   ``.ext`` stay intact, only the stem is shortened, then normalised and stripped again.

The result is never empty, ``.`` or ``..``, holds no ``/``, NUL or other control character, is NFC,
and encodes to valid UTF-8 of at most `MAX_NAME_BYTES` bytes.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

MAX_NAME_BYTES: Final = 255
"""The longest name, in bytes of UTF-8, that Linux file systems accept."""

MAX_EXT_BYTES: Final = 32
"""An extension longer than this (never a real one) is cut to this many bytes."""

MAX_AFFIX_BYTES: Final = 32
"""The longest `fallback` and `suffix` accepted, in bytes of UTF-8."""

SLASH_REPLACEMENT: Final = "\u2215"
LEADING_DOT_REPLACEMENT: Final = "\u2024"
SURROGATE_REPLACEMENT: Final = "\ufffd"

_REPLACEMENTS: Final = {
    **{chr(code): " " for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))},
    "/": SLASH_REPLACEMENT,
}
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f/\ud800-\udfff]")


def sanitize_piece(text: str) -> str:
    """Cleans the characters of one piece of a name (rules 1 to 3), nothing else.

    Used on each field value before it is put into a name, so that a ``/`` in a title never makes a
    folder. Length, whitespace and normalisation are left to `sanitize_component`.

    Args:
        text: any text, possibly holding control characters or lone surrogates.

    Returns:
        The text with ``/``, control characters and lone surrogates replaced, one for one.
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    """The replacement of one unsafe character (a lone surrogate when not in the table)."""
    return _REPLACEMENTS.get(match.group(), SURROGATE_REPLACEMENT)


def clean_text(text: str) -> str:
    """Applies rules 1 to 4: `sanitize_piece`, NFC, and strips surrounding whitespace.

    Args:
        text: any text.

    Returns:
        The cleaned text, possibly empty.
    """
    return unicodedata.normalize("NFC", sanitize_piece(text)).strip()


def sanitize_component(name: str, *, ext: str | None = None, fallback: str = "_", suffix: str = "") -> str:
    """Makes one valid path component out of any text (see the module docstring for the rules).

    Args:
        name: the name, or the stem of a file name when `ext` is given.
        ext: the extension without the dot; the result is ``<stem><suffix>.<ext>``. ``None`` or an
            extension that cleans to nothing adds no dot.
        fallback: used instead of a stem that is empty, ``.`` or ``..`` once cleaned.
        suffix: printable ASCII kept intact between the stem and the extension, e.g. ``" (2)"``.

    Returns:
        A valid component, at most `MAX_NAME_BYTES` bytes of UTF-8.

    Raises:
        ValueError: `fallback` is not itself a short valid name, or `suffix` is not short printable
            ASCII without ``/``.
    """
    _check_affixes(fallback, suffix)
    tail = suffix + _ext_part(ext)
    stem = clean_text(name)
    if stem in ("", ".", ".."):
        stem = fallback
    stem = _undot(stem)
    return _fit(stem, MAX_NAME_BYTES - len(tail.encode())) + tail


@lru_cache(maxsize=64)
def _check_affixes(fallback: str, suffix: str) -> None:
    """Raises `ValueError` unless `fallback` and `suffix` are short and keep the result valid (memoised)."""
    if (
        clean_text(fallback) != fallback
        or fallback in ("", ".", "..")
        or fallback.startswith(".")
        or len(fallback.encode()) > MAX_AFFIX_BYTES
    ):
        raise ValueError(f"fallback {fallback!r} is not a short valid name")
    if not (suffix.isascii() and suffix.isprintable()) or "/" in suffix or len(suffix) > MAX_AFFIX_BYTES:
        raise ValueError(f"suffix {suffix!r} is not short printable ASCII without '/'")


@lru_cache(maxsize=256)
def _ext_part(ext: str | None) -> str:
    """Returns ``"." + ext`` cleaned and cut to `MAX_EXT_BYTES`, or ``""`` for none (memoised)."""
    if not ext:
        return ""
    cleaned = _fit(clean_text(ext), MAX_EXT_BYTES)
    return "." + cleaned if cleaned else ""


def _undot(stem: str) -> str:
    """Replaces the leading dots of `stem` with look-alikes so the name is not hidden."""
    undotted = stem.lstrip(".")
    return LEADING_DOT_REPLACEMENT * (len(stem) - len(undotted)) + undotted


def _fit(text: str, budget: int) -> str:
    """Cuts `text` to at most `budget` bytes of UTF-8 on a character boundary, keeping it NFC and stripped.

    The cut text is normalised again (a cut may end inside a combining sequence) and stripped on the
    right; in the odd case normalising made it longer, the cut moves one byte left and tries again.
    """
    data = text.encode()
    cut = budget
    while len(data) > budget:
        text = unicodedata.normalize("NFC", data[:cut].decode(errors="ignore")).rstrip()
        data = text.encode()
        cut -= 1
    return text
