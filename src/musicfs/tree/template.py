"""The path template language: how a track's fields become the components of its path.

Owns: parsing and checking templates (`Template.parse`) and rendering them (`Template.render`).
Concurrency: a `Template` is immutable once parsed; rendering is pure; safe to share between threads.

Syntax (the default is `DEFAULT_TEMPLATE`)::

    {albumartist}/{album}[ ({year})]/[{disc}-][{track:02} ]{title}.{ext}

* ``/`` separates components (folders, then the file name); no component may be empty.
* ``{field}`` is replaced by the field's value; ``{field:0N}`` (N from 1 to 9) zero-pads a number
  field to N digits (``{track:02}`` gives ``07``). A missing field outside ``[...]`` renders empty.
* ``[...]`` is an optional section: it vanishes when any field inside it is missing or empty, so a
  missing year leaves no ``()`` and a missing track leaves no stray space. Sections do not nest, hold
  at least one field, and hold no ``/``.
* ``\\{``, ``\\}``, ``\\[``, ``\\]`` and ``\\\\`` stand for the character itself; any other backslash is an
  error.
* Every component needs a field outside ``[...]`` (so it can never render empty by design), except
  that a folder may be constant text (``Library/{albumartist}/...``: no field, no section), which must
  be a valid name as written (not ``.`` or ``..``, no leading dot or surrounding space, at most 255
  bytes); it is normalised to NFC and shown exactly so. The file name always needs a field.
* The file name ends with the extension: when the last component ends with ``.{ext}`` that is the
  extension, otherwise ``.{ext}`` is appended. ``{ext}`` may also appear anywhere else.

Fields: ``albumartist``, ``artist``, ``album``, ``title``, ``genre``, ``ext`` (text) and ``year``,
``track``, ``tracktotal``, ``disc``, ``disctotal`` (numbers). What each one resolves to (defaults,
compilations, when ``disc`` is present) is decided by `musicfs.tree.layout`; this module only
substitutes. Each value is cleaned with `sanitize_piece`, so a ``/`` in a title never makes a folder;
making whole components valid is left to `sanitize_component`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from musicfs.core.errors import ConfigError
from musicfs.tree.sanitize import sanitize_component, sanitize_piece

DEFAULT_TEMPLATE: Final = "{albumartist}/{album}[ ({year})]/[{disc}-][{track:02} ]{title}.{ext}"

NUMBER_FIELDS: Final = frozenset({"year", "track", "tracktotal", "disc", "disctotal"})
TEXT_FIELDS: Final = frozenset({"albumartist", "artist", "album", "title", "genre", "ext"})
FIELDS: Final = NUMBER_FIELDS | TEXT_FIELDS

FieldValue = str | int | None

_TOKEN: Final = re.compile(
    r"\\(?P<escape>.?)|\{(?P<field>[^{}]*)\}|(?P<open>\[)|(?P<close>\])|(?P<slash>/)|(?P<stray>[{}])"
    r"|(?P<text>[^\\\[\]/{}]+)",
    re.DOTALL,
)
_ESCAPABLE: Final = frozenset("{}[]\\")
_SPEC: Final = re.compile(r"0[1-9]")


@dataclass(frozen=True, slots=True)
class _Field:
    """A ``{name}`` or ``{name:spec}`` placeholder."""

    name: str
    spec: str


@dataclass(frozen=True, slots=True)
class _Optional:
    """A ``[...]`` section: literal text and fields, all shown or none."""

    parts: tuple[str | _Field, ...]


_Node = str | _Field | _Optional
_Component = tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed, checked path template; build it with `Template.parse`.

    Attributes:
        text: the template as written.
        folder_fields: the names of the fields the folders depend on, sorted: tracks equal in these
            fields have the same folders, which lets callers render folders once per album.
    """

    text: str
    folder_fields: tuple[str, ...]
    _folders: tuple[_Component, ...] = field(repr=False)
    _file: _Component = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parses and checks a template.

        Args:
            text: the template, e.g. `DEFAULT_TEMPLATE`.

        Returns:
            The parsed template.

        Raises:
            ConfigError: the template is empty, names an unknown field, has an unbalanced or nested
                bracket, a bad escape or format, an empty component, a component without a field
                (other than a constant folder), or a constant folder that is not a valid name as
                written; the message is one line naming the problem and its position.
        """
        *folders, file = _Parser(text).parse()
        return cls(text, _field_names(folders), tuple(folders), file)

    def render(self, fields: Mapping[str, FieldValue]) -> list[str]:
        """Renders the raw components of a path: folders, then the file name with its extension.

        Args:
            fields: field values; a missing key, ``None`` or blank text is a missing field.

        Returns:
            The components, not yet made valid (see `sanitize_component`).
        """
        stem, ext = self.render_file(fields)
        return [*self.render_folders(fields), f"{stem}.{ext}" if ext else stem]

    def render_folders(self, fields: Mapping[str, FieldValue]) -> tuple[str, ...]:
        """Renders the raw folder components, as in `render`; only `folder_fields` matter.

        Args:
            fields: field values; a missing key, ``None`` or blank text is a missing field.

        Returns:
            The folder components, possibly none, not yet made valid.
        """
        return tuple(_render_component(component, fields) for component in self._folders)

    def render_file(self, fields: Mapping[str, FieldValue]) -> tuple[str, str]:
        """Renders the raw file name of `render`, keeping its stem and extension apart.

        Args:
            fields: field values; a missing key, ``None`` or blank text is a missing field.

        Returns:
            The stem, not yet made valid, and the extension cleaned with `sanitize_piece` (``""``
            when missing).
        """
        return _render_component(self._file, fields), _value_text(fields.get("ext"), "") or ""


def _field_names(components: list[_Component]) -> tuple[str, ...]:
    """The sorted names of the fields used in `components`, sections included."""
    names: set[str] = set()
    for component in components:
        for node in component:
            parts = node.parts if isinstance(node, _Optional) else (node,)
            names.update(part.name for part in parts if isinstance(part, _Field))
    return tuple(sorted(names))


def _render_component(component: _Component, fields: Mapping[str, FieldValue]) -> str:
    """Renders one component; a missing field renders empty, a section with one vanishes."""
    out: list[str] = []
    for node in component:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Field):
            out.append(_value_text(fields.get(node.name), node.spec) or "")
        else:
            out.append(_render_optional(node, fields))
    return "".join(out)


def _render_optional(section: _Optional, fields: Mapping[str, FieldValue]) -> str:
    """Renders a ``[...]`` section, or ``""`` when any field in it is missing."""
    out: list[str] = []
    for part in section.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        text = _value_text(fields.get(part.name), part.spec)
        if text is None:
            return ""
        out.append(text)
    return "".join(out)


def _value_text(value: FieldValue, spec: str) -> str | None:
    """Formats one field value, or returns ``None`` when it is missing or blank."""
    if value is None:
        return None
    if isinstance(value, int):
        return format(value, spec)
    text = sanitize_piece(value)
    return text if text.strip() else None


class _Parser:
    """Turns template text into components; one instance parses one template, then is dropped."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._components: list[_Component] = []
        self._nodes: list[_Node] = []
        self._section: list[str | _Field] | None = None
        self._section_start = 0
        self._component_start = 0

    def parse(self) -> tuple[_Component, ...]:
        """Parses the whole text.

        Returns:
            The components, the last one without its ``.{ext}`` ending.

        Raises:
            ConfigError: the template is bad.
        """
        if not self._text.strip():
            raise self._error("it is empty")
        for match in _TOKEN.finditer(self._text):
            self._token(match)
        if self._section is not None:
            raise self._error(f"'[' at position {self._section_start} is never closed")
        self._end_component(len(self._text), last=True)
        return tuple(self._components)

    def _token(self, match: re.Match[str]) -> None:
        """Handles one token of the text."""
        kind, value, pos = match.lastgroup, match.group(match.lastgroup or 0), match.start()
        if kind == "text":
            self._add(value)
        elif kind == "escape":
            self._add(self._escape(value, pos))
        elif kind == "field":
            self._add(self._field(value, pos))
        elif kind == "open":
            self._open(pos)
        elif kind == "close":
            self._close(pos)
        elif kind == "slash":
            self._slash(pos)
        else:
            raise self._error(f"unbalanced {value!r} at position {pos}")

    def _add(self, node: str | _Field) -> None:
        """Appends text or a field to the open section, or else to the component; merges text."""
        target: list[str | _Field] | list[_Node] = self._section if self._section is not None else self._nodes
        if isinstance(node, str) and target and isinstance(target[-1], str):
            target[-1] += node
        else:
            target.append(node)

    def _escape(self, char: str, pos: int) -> str:
        """Returns the escaped character, if it may be escaped."""
        if not char:
            raise self._error("the template ends with a lone '\\'")
        if char not in _ESCAPABLE:
            allowed = "\\{ \\} \\[ \\] \\\\"
            raise self._error(f"bad escape '\\{char}' at position {pos} (only {allowed} are allowed)")
        return char

    def _field(self, body: str, pos: int) -> _Field:
        """Parses the inside of ``{...}``."""
        name, _, spec = body.partition(":")
        if not name:
            raise self._error(f"field {{{body}}} at position {pos} has no name")
        if name not in FIELDS:  # the fields are listed by --help (`--template`) and the README
            raise self._error(f"unknown field {{{body}}}; see --help")
        if ":" in body and not (name in NUMBER_FIELDS and _SPEC.fullmatch(spec)):
            raise self._error(
                f"bad format {{{body}}} at position {pos} (only zero-padding of a number, like {{track:02}})"
            )
        return _Field(name, spec)

    def _open(self, pos: int) -> None:
        """Starts a ``[...]`` section."""
        if self._section is not None:
            raise self._error(f"nested '[' at position {pos} (sections do not nest)")
        self._section, self._section_start = [], pos

    def _close(self, pos: int) -> None:
        """Ends a ``[...]`` section."""
        if self._section is None:
            raise self._error(f"unbalanced ']' at position {pos}")
        if not any(isinstance(part, _Field) for part in self._section):
            raise self._error(f"the section '[' at position {self._section_start} has no field")
        self._nodes.append(_Optional(tuple(self._section)))
        self._section = None

    def _slash(self, pos: int) -> None:
        """Ends a component."""
        if self._section is not None:
            raise self._error(f"'/' at position {pos} inside the section opened at {self._section_start}")
        self._end_component(pos, last=False)
        self._component_start = pos + 1

    def _end_component(self, end: int, *, last: bool) -> None:
        """Checks and stores the component that ends at `end`; the last one loses its ``.{ext}``."""
        nodes = _without_ext(self._nodes) if last else self._nodes
        source = self._text[self._component_start : end]
        if not source:
            raise self._error(f"empty component at position {self._component_start}")
        if not last and len(nodes) == 1 and isinstance(nodes[0], str):
            nodes = [self._constant_folder(nodes[0])]
        elif not any(isinstance(node, _Field) for node in nodes):
            what = (
                "the file name needs a field besides .{ext}"
                if last
                else "a folder needs one, or else only constant text"
            )
            raise self._error(f"component {source!r} has no field outside [...]; {what}")
        self._components.append(tuple(nodes))
        self._nodes = []

    def _constant_folder(self, text: str) -> str:
        """Checks a folder made of constant text: it must be shown exactly as written (once NFC)."""
        name = unicodedata.normalize("NFC", text)
        shown = sanitize_component(name)
        if shown != name:
            raise self._error(
                f"constant folder {text!r} is not a valid name as written (it would be shown as {shown!r})"
            )
        return name

    def _error(self, problem: str) -> ConfigError:
        """Builds the one-line error for `problem`."""
        return ConfigError(f"template {self._text!r}: {problem}")


def _without_ext(nodes: list[_Node]) -> list[_Node]:
    """Returns the file name's nodes without a final ``.{ext}`` (which `Template.render` adds back)."""
    if len(nodes) < 2 or nodes[-1] != _Field("ext", ""):
        return nodes
    before = nodes[-2]
    if not isinstance(before, str) or not before.endswith("."):
        return nodes
    return [*nodes[:-2], before[:-1]] if before != "." else nodes[:-2]
