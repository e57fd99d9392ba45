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
        ("[[origin]]\npriority = 1\n", "has no 'url'"),
        ("[[origin]]\npath = '/x'\ncolour = 'red'\n", "unknown key 'colour'"),
        ("not toml at all [", "not TOML"),
        ("state_dri = '/x'\n", r"unknown key 'state_dri' \(did you mean 'state_dir'\?\)"),
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


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), r": not UTF-8 \(line 1: byte 0x89\)"),
        ('state_dir = "/var/lib/musicfs"\n'.encode("utf-16"), " is UTF-16; save it as UTF-8"),
        (
            b'template = "{artist}/{title}"\nstate_dir = "/srv/caf\xe9"\n',
            r": not UTF-8 \(line 2: byte 0xe9\)",
        ),
    ],
    ids=["binary", "utf-16", "latin-1-byte-in-a-string"],
)
def test_config_file_that_is_not_utf8(tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "musicfs.toml"
    file.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{file}{message}") as error:
        read_config_file(file)
    assert "\n" not in str(error.value)


def test_deeply_nested_config_file(tmp_path: Path) -> None:
    file = tmp_path / "musicfs.toml"
    file.write_text("origin = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=f"{file}: nested too deeply"):
        read_config_file(file)


@pytest.mark.parametrize("key", ["state_dir", "cache_dir", "mountpoint", "template"])
def test_nul_in_a_config_file_string(tmp_path: Path, key: str) -> None:
    file = tmp_path / "musicfs.toml"
    file.write_text(f'{key} = "/srv/a\\u0000b"\n')
    with pytest.raises(ConfigError, match=f"{file}: NUL character in '{key}'"):
        read_config_file(file)


def test_nul_in_an_origin_path_of_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "musicfs.toml"
    file.write_text('[[origin]]\npath = "/srv/a\\u0000b"\n')
    with pytest.raises(ConfigError, match=r"\[\[origin\]\] entry 1: NUL character in 'path'"):
        read_config_file(file)


@pytest.mark.parametrize("key", ["state_dir", "cache_dir", "mountpoint"])
def test_nul_in_a_path_given_on_the_command_line(key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} contains a NUL character"):
        build_config({}, {"origin": ["/music"], key: "/srv/a\0b"})


def test_nul_in_an_origin_given_on_the_command_line() -> None:
    with pytest.raises(ConfigError, match="origin contains a NUL character"):
        build_config({}, {"origin": ["/music\0x"], "state_dir": "/tmp/x"})
