"""Origins by URL in the config (issue 9): `--origin URL` and `[[origin]]` tables with `url = ...` and
their scheme's own settings. A plain path is still a local folder; bad URLs, unknown keys and
unreadable secret files are one line and exit 2; a secret never shows in a repr or a message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from musicfs.core.config import build_config, read_config_file
from musicfs.core.errors import ConfigError

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _from_file(tmp_path: Path, text: str) -> object:
    file = tmp_path / "musicfs.toml"
    file.write_text(text)
    return build_config(read_config_file(file), {"state_dir": str(tmp_path / "state")})


def _secret_file(tmp_path: Path, mode: int = 0o600) -> Path:
    secret = tmp_path / "s3.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(mode)
    return secret


def test_an_origin_url_on_the_command_line_is_a_remote_origin(tmp_path: Path) -> None:
    config = build_config({}, {"origin": ["s3://music/library/", "/srv/music"], "state_dir": str(tmp_path)})
    remote, local = config.origins
    assert remote.path is None and remote.remote is not None
    assert remote.remote.url == "s3://music/library" and remote.remote.scheme == "s3"
    assert remote.root == b"s3://music/library"
    assert local.path == Path("/srv/music") and local.remote is None and local.root == b"/srv/music"


def test_an_origin_table_with_a_url_and_its_settings(tmp_path: Path) -> None:
    secret = _secret_file(tmp_path)
    config = _from_file(
        tmp_path,
        '[[origin]]\nurl = "s3://music"\nendpoint = "http://127.0.0.1:8333/"\nregion = "eu-west-1"\n'
        f'access_key_id = "musicfs"\nsecret_access_key_file = "{secret}"\ncache = false\n'
        '[[origin]]\nurl = "/srv/local"\n',
    )
    s3, local = config.origins  # type: ignore[attr-defined]
    assert s3.remote.url == "s3://music" and s3.cache is False
    assert s3.remote.setting("endpoint") == "http://127.0.0.1:8333"
    assert s3.remote.setting("region") == "eu-west-1"
    assert s3.remote.setting("access_key_id") == "musicfs"
    assert s3.remote.secret("secret_access_key") == SECRET
    assert local.path == Path("/srv/local")
    assert SECRET not in repr(config) and SECRET not in str(config)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host/music", "unknown origin scheme 'ftp'"),
        ("s3://", "names no bucket"),
        ("s3://Music_Bucket/x", "is not a valid bucket name"),
        ("s3://music/a//b", "empty or relative"),
        ("s3://music/a/../b", "empty or relative"),
        ("s3://music/x?versionId=3", "query"),
        ("s3://music:8333/x", "port"),
    ],
)
def test_a_bad_origin_url_is_one_line(tmp_path: Path, url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as error:
        build_config({}, {"origin": [url], "state_dir": str(tmp_path)})
    assert error.value.exit_code == 2 and "\n" not in str(error.value)


def test_credentials_in_a_url_are_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credentials") as error:
        build_config({}, {"origin": [f"s3://AKIDEXAMPLE:{SECRET}@music/x"], "state_dir": str(tmp_path)})
    assert SECRET not in str(error.value)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('path = "/srv/music"\nendpoint = "http://127.0.0.1:1"\n', "unknown key 'endpoint'"),
        ('url = "s3://music"\npassword_file = "/x"\n', "unknown key 'password_file'"),
        ('url = "s3://music"\npath = "/srv/music"\n', "either 'url' or 'path'"),
        ("priority = 1\n", "has no 'url'"),
        ('url = "s3://music"\nendpoint = "127.0.0.1:8333"\n', "endpoint .* http:// or https://"),
        ('url = "s3://music"\nendpoint = "http://user:pw@127.0.0.1:8333"\n', "credentials"),
        ('url = "s3://music"\naccess_key_id = "musicfs"\n', "give both or neither"),
    ],
)
def test_bad_origin_tables_are_one_line(tmp_path: Path, table: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as error:
        _from_file(tmp_path, "[[origin]]\n" + table)
    assert error.value.exit_code == 2 and "\n" not in str(error.value)


def test_the_same_url_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="given twice"):
        build_config({}, {"origin": ["s3://music/a", "s3://music/a/"], "state_dir": str(tmp_path)})


def test_a_missing_or_unreadable_secret_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.secret"
    table = f'[[origin]]\nurl = "s3://music"\naccess_key_id = "k"\nsecret_access_key_file = "{missing}"\n'
    with pytest.raises(ConfigError, match=f"secret file {missing} does not exist") as error:
        _from_file(tmp_path, table)
    assert error.value.exit_code == 2
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match=f"cannot read secret file {folder}"):
        _from_file(tmp_path, table.replace(str(missing), str(folder)))
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ConfigError, match=f"secret file {empty} is empty"):
        _from_file(tmp_path, table.replace(str(missing), str(empty)))


@pytest.mark.allow_log(r"secret file .* can be read by other users")
def test_a_secret_file_readable_by_others_gives_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = _secret_file(tmp_path, 0o644)
    table = f'[[origin]]\nurl = "s3://music"\naccess_key_id = "k"\nsecret_access_key_file = "{secret}"\n'
    with caplog.at_level(logging.WARNING):
        _from_file(tmp_path, table)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(secret) in warnings[0].getMessage()
    assert "0644" in warnings[0].getMessage() and SECRET not in caplog.text
    caplog.clear()
    secret.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        _from_file(tmp_path, table)
    assert not caplog.records


def test_a_webdav_origin_table_with_its_settings(tmp_path: Path) -> None:
    secret = _secret_file(tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a connection\n")
    config = _from_file(
        tmp_path,
        '[[origin]]\nurl = "webdav+https://NAS.local:8443/Music/Lib/"\nusername = "music"\n'
        f'password_file = "{secret}"\nca_file = "{ca}"\n'
        '[[origin]]\nurl = "webdav+http://127.0.0.1"\n',
    )
    tls, plain = config.origins  # type: ignore[attr-defined]
    assert tls.remote.url == "webdav+https://nas.local:8443/Music/Lib"
    assert tls.remote.setting("username") == "music" and tls.remote.setting("ca_file") == str(ca)
    assert tls.remote.secret("password") == SECRET and SECRET not in repr(tls)
    assert plain.remote.url == "webdav+http://127.0.0.1" and plain.remote.settings == ()


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('url = "webdav+http:///music"', "names no server"),
        ('url = "webdav+http://host:99999/music"', "has a bad port"),
        ('url = "webdav+http://host/a//b"', "empty or relative parts"),
        ('url = "webdav+http://host/music"\nusername = "u"', "username and password_file: give both"),
        ('url = "webdav+http://host/music"\nca_file = "/x.pem"', "unknown key 'ca_file'"),
        ('url = "webdav+https://host/music"\nca_file = "/no/such.pem"', "ca_file /no/such.pem is not a file"),
    ],
)
def test_bad_webdav_origins_are_one_line(tmp_path: Path, table: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as error:
        _from_file(tmp_path, f"[[origin]]\n{table}\n")
    assert "\n" not in str(error.value)


def test_webdav_credentials_in_the_url_are_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds credentials") as error:
        _from_file(tmp_path, '[[origin]]\nurl = "webdav+https://music:hunter2@nas/music"\n')
    assert "hunter2" not in str(error.value)


def test_an_sftp_origin_names_its_user_host_port_and_folder(tmp_path: Path) -> None:
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    key.write_text("a key\n")
    known.write_text("a host key\n")
    phrase = tmp_path / "key.pass"
    phrase.write_text(SECRET + "\n")
    phrase.chmod(0o600)
    config = _from_file(
        tmp_path,
        '[[origin]]\nurl = "sftp://music@127.0.0.1:2222/srv/music/"\n'
        f'identity_file = "{key}"\nknown_hosts = "{known}"\npassphrase_file = "{phrase}"\n'
        '[[origin]]\nurl = "sftp://Music.Example.org/~/tunes"\n',
    )
    first, second = config.origins  # type: ignore[attr-defined]
    assert first.remote.url == "sftp://music@127.0.0.1:2222/srv/music" and first.remote.scheme == "sftp"
    assert first.remote.setting("identity_file") == str(key)
    assert first.remote.setting("known_hosts") == str(known)
    assert first.remote.secret("passphrase") == SECRET and SECRET not in repr(config)
    assert second.remote.url == "sftp://music.example.org/~/tunes"  # a folder below the user's home


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sftp://music:hunter2@host/srv", "holds credentials"),
        ("sftp://music@/srv", "names no host"),
        ("sftp://music@host", "names no folder"),
        ("sftp://music@host:0/srv", "port"),
        ("sftp://music@host:99999/srv", "port"),
        ("sftp://music@host/srv/../etc", "empty or relative"),
    ],
)
def test_a_bad_sftp_url_is_one_line(tmp_path: Path, url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as error:
        build_config({}, {"origin": [url], "state_dir": str(tmp_path)})
    assert error.value.exit_code == 2 and "\n" not in str(error.value)
    assert "hunter2" not in str(error.value)


def test_an_sftp_key_or_known_hosts_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    for key in ("identity_file", "known_hosts"):
        table = f'[[origin]]\nurl = "sftp://m@host/srv"\n{key} = "{tmp_path / "missing"}"\n'
        with pytest.raises(ConfigError, match=f"{key} {tmp_path / 'missing'} does not exist") as error:
            _from_file(tmp_path, table)
        assert error.value.exit_code == 2
