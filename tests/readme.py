"""What README.md promises about the command line, read out of it for the tests that hold the CLI to it:
the exit-code table (code -> meaning) and the usage block (command -> the options it names)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(heading: str) -> str:
    text = README.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"\n#+ ", text[start:])
    return text[start : start + following.start()] if following else text[start:]


def exit_codes() -> dict[int, str]:
    """The rows of the README's exit-code table."""
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", _section("### Exit codes"), re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def usage() -> dict[str, set[str]]:
    """Each `musicfs COMMAND` of the README's usage block and the options its line names (its
    indented continuation lines included; `# comments` left out)."""
    block = _section("## Usage").split("```sh\n", 1)[1].split("```", 1)[0]
    commands: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in block.splitlines():
        code = line.split("  #", 1)[0] if not line.lstrip().startswith("#") else ""
        if line.startswith("musicfs "):
            current = commands.setdefault(line.split()[1], set())
        elif not code.strip() or current is None:
            continue
        current.update(re.findall(r"--[a-z][a-z-]*", code))
    return commands
