"""The exit codes live in one place, `musicfs.core.errors.ExitCode`; README.md's table documents exactly
those codes, and `musicfs --help` shows each with its meaning."""

from __future__ import annotations

from musicfs.cli import help_epilog
from musicfs.core.errors import ExitCode, UserError
from tests import readme


def test_readme_documents_exactly_the_exit_codes_of_the_command() -> None:
    assert sorted(readme.exit_codes()) == sorted(int(code) for code in ExitCode)


def test_every_user_error_exits_with_a_listed_code() -> None:
    def subclasses(cls: type[UserError]) -> list[type[UserError]]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in subclasses(child))]

    import musicfs.daemon.control  # noqa: F401 (defines ControlError)

    for error in subclasses(UserError):
        assert isinstance(error.exit_code, ExitCode), error


def test_help_lists_each_code_with_its_meaning() -> None:
    lines = help_epilog().splitlines()
    for code in ExitCode:
        assert any(line.split()[:1] == [str(int(code))] and code.meaning in line for line in lines), code
