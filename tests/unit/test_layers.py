"""The layering of ARCHITECTURE.md, enforced: a module imports only from layers below its own (or its
own package), `tree` and `fs` stay free of what they must not know, and `musicfs` never imports
`chaos`. Read from the source with `ast`, so nothing is imported to check it."""

from __future__ import annotations

import ast
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


def _unit(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def test_imports_follow_the_layers() -> None:
    assert _violations() == []
