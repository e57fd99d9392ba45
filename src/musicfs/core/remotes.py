"""What a remote origin is in the configuration: its URL, its scheme's settings and its secrets.

Owns: `RemoteConfig`, which URL forms each scheme accepts (`_URL_CHECKS`: `s3://BUCKET[/PREFIX]`,
`webdav+http://HOST[:PORT]/PATH`, `webdav+https://...`, `sftp://[USER@]HOST[:PORT]/FOLDER`), the
settings each scheme's `[[origin]]` table may hold (`SCHEME_KEYS`), and reading secret files
(`*_file` settings that hold a password, key or passphrase): a file that cannot be read is a
ConfigError, one that other users may read gives a WARNING. A secret is never part of a repr, a
message or the origin's `url` (which is its name everywhere: the index, `status`, `metrics`,
`user.musicfs.origin`); credentials written into a URL are refused rather than stripped (an SSH user
name is no credential: `sftp://USER@HOST` keeps it, `USER:PASSWORD@` is refused). Files that are
named but not secret (an SSH key, whose passphrase is the secret, and known_hosts) must be readable
at start (`_FILE_KEYS`).
Adding a scheme: a URL check in `_URL_CHECKS`, its keys in `SCHEME_KEYS`, its secret files in
`SECRET_FILES` (and in its keys), and a builder in `musicfs.origins.factory`.
Concurrency: values are immutable; reading secret files is blocking I/O before the event loop.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from musicfs.core.errors import ConfigError

log = logging.getLogger(__name__)

URL_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SCHEME_KEYS: dict[str, dict[str, type]] = {
    "s3": {"endpoint": str, "region": str, "access_key_id": str, "secret_access_key_file": str},
    "webdav+http": {"username": str, "password_file": str},
    "webdav+https": {"username": str, "password_file": str, "ca_file": str},
    "sftp": {"identity_file": str, "known_hosts": str, "passphrase_file": str},
}
SECRET_FILES: dict[str, str] = {  # setting -> secret
    "secret_access_key_file": "secret_access_key",
    "password_file": "password",
    "passphrase_file": "passphrase",
}
_FILE_KEYS = ("identity_file", "known_hosts")  # settings naming a file that must be readable
_USER_IN_URL = {"sftp"}  # schemes whose URL may name a user (never a password)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """A remote origin: `url` (normalised, never with credentials) names it; `settings` are its
    table's plain values, `secrets` what its secret files hold (never shown)."""

    url: str
    settings: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    def setting(self, key: str) -> str | None:
        return dict(self.settings).get(key)

    def secret(self, key: str) -> str | None:
        return dict(self.secrets).get(key)


def is_url(text: str) -> bool:
    """Whether an origin is given as a URL (`scheme://...`) rather than a local path."""
    return URL_FORM.match(text) is not None


def scheme_of(text: str) -> str:
    return text.split("://", 1)[0].lower()


def remote_config(url: str, table: Mapping[str, Any], where: str) -> RemoteConfig:
    """The remote origin `url` with the settings of its `[[origin]]` table (empty for `--origin URL`);
    ConfigError for a URL or a setting that is not right, and for a secret file that cannot be read."""
    scheme = scheme_of(url)
    check = _URL_CHECKS.get(scheme)
    if check is None:
        known = ", ".join(f"{s}://" for s in sorted(_URL_CHECKS))
        raise ConfigError(f"{where}: unknown origin scheme '{scheme}' (known: {known}, or a local path)")
    parts = urlsplit(url)
    if "@" in parts.netloc and (scheme not in _USER_IN_URL or ":" in parts.netloc.rsplit("@", 1)[0]):
        raise ConfigError(
            f"{where}: origin URL {scheme}://...@{parts.netloc.rsplit('@', 1)[1]} holds credentials; "
            "give them in the origin's table (a *_file setting) or in the environment instead"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: origin URL {url} has a query or fragment; MusicFS takes none")
    normalised = check(parts, where)
    settings: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in table.items():
        if key in SECRET_FILES and key in SCHEME_KEYS[scheme]:
            secrets[SECRET_FILES[key]] = read_secret_file(str(value))
        elif key in SCHEME_KEYS[scheme]:
            settings[key] = str(value)
    for key in _FILE_KEYS:
        if key in settings:
            settings[key] = _readable_file(key, settings[key])
    if "endpoint" in settings:
        settings["endpoint"] = _endpoint(settings["endpoint"], where)
    if scheme == "s3" and ("access_key_id" in settings) != ("secret_access_key" in secrets):
        raise ConfigError(f"{where}: access_key_id and secret_access_key_file: give both or neither")
    if scheme.startswith("webdav") and ("username" in settings) != ("password" in secrets):
        raise ConfigError(f"{where}: username and password_file: give both or neither")
    if "ca_file" in settings and not os.path.isfile(settings["ca_file"]):
        raise ConfigError(f"{where}: ca_file {settings['ca_file']} is not a file")
    return RemoteConfig(normalised, tuple(sorted(settings.items())), tuple(sorted(secrets.items())))


def _s3_url(parts: SplitResult, where: str) -> str:
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"{where}: origin URL s3://{parts.path} names no bucket (s3://BUCKET[/PREFIX])")
    if ":" in bucket:
        raise ConfigError(f"{where}: origin URL s3://{bucket} has a port; give the server as 'endpoint'")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(f"{where}: '{bucket}' is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
    prefix = parts.path.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ConfigError(f"{where}: origin URL prefix '{parts.path}' has empty or relative parts")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _webdav_url(parts: SplitResult, where: str) -> str:
    """`webdav+http(s)://HOST[:PORT][/PATH]`, with the host in lower case and no trailing '/'."""
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(f"{where}: origin URL {scheme}://{parts.netloc} has a bad port") from None
    if not host:
        raise ConfigError(f"{where}: origin URL {scheme}://{parts.path} names no server")
    path = parts.path.strip("/")
    if path and any(part in ("", ".", "..") for part in path.split("/")):
        raise ConfigError(f"{where}: origin URL path '{parts.path}' has empty or relative parts")
    server = f"[{host}]" if ":" in host else host
    server += f":{port}" if port is not None else ""
    return f"{scheme}://{server}/{path}" if path else f"{scheme}://{server}"


def _sftp_url(parts: SplitResult, where: str) -> str:
    if not parts.hostname:
        raise ConfigError(f"{where}: origin URL sftp://{parts.netloc}{parts.path} names no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if (port is not None and not 0 < port < 65536) or parts.netloc.endswith(":"):
        raise ConfigError(f"{where}: origin URL sftp://{parts.netloc} has no valid port (1-65535)")
    folder = parts.path.rstrip("/")
    if not folder:
        raise ConfigError(f"{where}: origin URL sftp://{parts.netloc} names no folder (sftp://HOST/FOLDER)")
    if any(part in ("", ".", "..") for part in folder.split("/")[1:]):
        raise ConfigError(f"{where}: origin URL folder '{parts.path}' has empty or relative parts")
    user = f"{parts.username}@" if parts.username else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"sftp://{user}{host}{f':{port}' if port else ''}{folder}"


_URL_CHECKS: dict[str, Callable[[SplitResult, str], str]] = {
    "s3": _s3_url,
    "webdav+http": _webdav_url,
    "webdav+https": _webdav_url,
    "sftp": _sftp_url,
}


def _readable_file(key: str, name: str) -> str:
    """The absolute path of a file a setting names; ConfigError when it cannot be read."""
    path = os.path.abspath(os.path.expanduser(name))
    if not os.path.exists(path):
        raise ConfigError(f"{key} {path} does not exist")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"{key} {path} is not a file this user can read")
    return path


def _endpoint(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: endpoint '{value}' must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ConfigError(f"{where}: the endpoint holds credentials; give them as settings instead")
    return value.rstrip("/")


def read_secret_file(name: str) -> str:
    """The secret a file holds (one line; trailing white space dropped). ConfigError when it cannot
    be read or is empty; a WARNING when users other than its owner may read it."""
    path = os.path.abspath(os.path.expanduser(name))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the start
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"cannot read secret file {path}: not a regular file")
        raw = os.read(fd, 65536)
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text") from None
    if not secret:
        raise ConfigError(f"secret file {path} is empty")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "secret file %s can be read by other users (mode %04o); make it private: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
    return secret
