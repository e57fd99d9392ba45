from __future__ import annotations

from pathlib import Path

import pytest

from musicfs.core.config import DEFAULT_TEMPLATE, build_config, read_config_file
from musicfs.core.errors import ConfigError


def test_cli_overrides_win_and_origins_keep_their_order(tmp_path: Path) -> None:
    config = build_config(
        {"origin": [{"path": "/b", "priority": 5}], "template": "x"},
        {"origin": ["/music", "/nas"], "template": None, "state_dir": str(tmp_path)},
    )
    assert [o.path for o in config.origins] == [Path("/music"), Path("/nas")]
    assert config.template == "x"
    assert config.state_dir == tmp_path


def test_file_origins_sorted_by_priority(tmp_path: Path) -> None:
    file = tmp_path / "musicfs.toml"
    file.write_text(
        'template = "{artist}/{title}"\n[[origin]]\npath = "/nas"\npriority = 2\n'
        '[[origin]]\npath = "/local"\npriority = 1\n'
    )
    config = build_config(read_config_file(file), {"state_dir": str(tmp_path)})
    assert [o.path for o in config.origins] == [Path("/local"), Path("/nas")]
    assert config.template == "{artist}/{title}"


def test_defaults(tmp_path: Path) -> None:
    config = build_config({}, {"origin": ["/m"], "state_dir": str(tmp_path)})
    assert config.template == DEFAULT_TEMPLATE
    assert config.read_timeout == 10.0
    assert not config.allow_other


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "unknown key 'bogus'"),
        ("read_timeout = true\n", "'read_timeout' must be"),
        ("template = 3\n", "'template' must be a string"),
        ("[[origin]]\npriority = 1\n", "has no 'path'"),
        ("[[origin]]\npath = '/x'\ncolour = 'red'\n", "unknown key 'colour'"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_config_file_gives_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        read_config_file(file)
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "no origin given"),
        ({"origin": ["/a", "/a"]}, "given twice"),
        ({"origin": ["/a"], "log_level": "loud"}, "log level"),
        ({"origin": ["/a"], "read_timeout": 0}, "read_timeout must be between"),
    ],
)
def test_bad_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(values, {"state_dir": "/tmp/x"})
