"""The layering of ARCHITECTURE.md, enforced: a module imports only from layers below its own (or its
own package), `tree`, `fs` and `core` stay free of what they must not know, also through what they
import (the rules follow imports transitively: `fs` must not load mutagen by way of the origins),
and `musicfs` never imports `chaos`. Read from the source with `ast`, so nothing is imported to
check it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "musicfs"

# Lower numbers are lower layers. Same-rank packages may not import each other.
RANKS = {
    "core": 0,
    "tags": 1,
    "sqlite": 1,
    "mountinfo": 1,
    "demo": 2,
    "origins": 2,
    "index": 3,
    "cache": 3,
    "tree": 3,
    "library": 4,
    "fs": 4,
    "daemon": 5,
    "cli": 6,
}
FORBIDDEN = {
    "tree": {"pyfuse3", "trio", "sqlite3", "mutagen", "os"},  # pure: no FUSE, no I/O
    "fs": {"mutagen", "musicfs.tags", "musicfs.index", "sqlite3"},  # the FUSE edge knows nothing of tags
    "core": {"pyfuse3", "trio", "mutagen", "sqlite3"},
}


def _module(path: Path) -> str:
    parts = ("musicfs", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(path): path for path in SRC.rglob("*.py")}


def _reached(start: str, modules: dict[str, Path]) -> set[str]:
    """Every name imported by `start` and, for musicfs modules, by what they import, and so on."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        path = modules.get(name)
        if path is None:
            continue
        for imported in _imports(path):
            # `from musicfs.x import y` may name a module y, or a name in x: follow both if they exist
            candidates = [imported] + [f"{imported}.{a}" for a in _from_names(path, imported)]
            for candidate in candidates:
                if candidate not in seen:
                    seen.add(candidate)
                    todo.append(candidate)
    return seen


def _from_names(path: Path, module: str) -> list[str]:
    return [
        alias.name
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and node.module == module and node.level == 0
        for alias in node.names
    ]


def _unit(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SRC:
            continue
        unit = _unit(path)
        assert unit in RANKS, f"{path}: no layer rank for '{unit}' in this test"
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "chaos":
                problems.append(f"{path.name} imports chaos")
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN.get(unit, ())):
                problems.append(f"{path.relative_to(SRC)} ({unit}) must not import {name}")
            if top != "musicfs" or name == "musicfs":
                continue
            target = name.split(".")[1]
            if target != unit and RANKS.get(target, 99) >= RANKS[unit]:
                problems.append(f"{path.relative_to(SRC)} ({unit}) imports {name}, which is not below it")
    return problems


def _transitive_violations() -> list[str]:
    modules = _modules()
    problems = []
    for name, path in sorted(modules.items()):
        unit = _unit(path)
        for reached in sorted(_reached(name, modules)):
            for bad in FORBIDDEN.get(unit, ()):
                if reached == bad or reached.startswith(bad + "."):
                    problems.append(f"{name} ({unit}) reaches {reached} through its imports")
    return problems


def test_imports_follow_the_layers() -> None:
    assert _violations() == []


def test_what_a_layer_must_not_know_it_does_not_reach_through_other_modules() -> None:
    assert _transitive_violations() == []


def test_the_transitive_check_sees_an_indirect_import() -> None:
    """The control: `fs.operations` reaches `trio` only through the gateway it imports."""
    modules = _modules()
    reached = _reached("musicfs.fs.operations", modules)
    assert "musicfs.origins.gateway" in reached and "trio" in reached
    assert "musicfs.origins.base" in reached
