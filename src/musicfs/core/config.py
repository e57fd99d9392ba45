"""The validated configuration of one MusicFS instance, from a TOML file and command-line overrides.

Owns: `Config` and `OriginConfig` (frozen dataclasses), reading the TOML file with `tomllib` (UTF-8
only; a file that is not UTF-8, too deeply nested or holds a NUL in a string is a ConfigError), and the
default locations of the state and cache directories (`folders`, the one place they are resolved).
Every default is written once, on `Config`; `build_config` takes them from there. It checks types
and values; checks that touch the disk (does the origin exist, is the mountpoint a folder) live in
`musicfs.daemon.preflight`.
Concurrency: values are immutable; loading does blocking file I/O and runs before the event loop.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from musicfs.core.errors import ConfigError
from musicfs.core.remotes import SCHEME_KEYS, RemoteConfig, is_url, remote_config, scheme_of

DEFAULT_TEMPLATE = "{albumartist}/{album}[ ({year})]/[{disc}-][{track:02} ]{title}.{ext}"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def default_cache_dir() -> Path:
    """`$CACHE_DIRECTORY` (set by systemd's CacheDirectory=), else `$XDG_CACHE_HOME/musicfs`."""
    systemd_dir = os.environ.get("CACHE_DIRECTORY")
    if systemd_dir:
        return Path(systemd_dir.split(":")[0])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "musicfs"


def default_state_dir() -> Path:
    """`$STATE_DIRECTORY` (set by systemd's StateDirectory=), else `$XDG_STATE_HOME/musicfs`."""
    systemd_dir = os.environ.get("STATE_DIRECTORY")
    if systemd_dir:
        return Path(systemd_dir.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "musicfs"


@dataclass(frozen=True, slots=True)
class OriginConfig:
    """One origin, only ever read: a local folder (`path`) or a remote one (`remote`: its URL and
    settings, see `musicfs.core.remotes`). A lower `priority` wins for duplicate tracks.
    `cache`: keep what is read in the local cache (None: for remote origins and for folders on
    network and FUSE filesystems)."""

    path: Path | None
    priority: int
    cache: bool | None = None
    remote: RemoteConfig | None = None

    @property
    def root(self) -> bytes:
        """How the origin is named (the index keys it by this): its folder, or its URL."""
        if self.remote is not None:
            return self.remote.url.encode()
        assert self.path is not None
        return os.fsencode(self.path)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a mount, scan or tree run needs to know.

    Attributes:
        origins: the origins, sorted by priority (most preferred first).
        state_dir: holds the index, the instance lock and logs of this instance.
        template: the path template (see `musicfs.tree.template`).
        mountpoint: where to mount; None for commands that do not mount.
        allow_other: let other users see the mount (needs `user_allow_other` for non-root).
        auto_unmount: ask libfuse to unmount when the process dies, even by SIGKILL.
        read_timeout: seconds an origin read or open may take before the reader gets EIO.
        attr_timeout: seconds the kernel may cache names and attributes (invalidated on change).
        drain_timeout: seconds in-flight requests get to finish when the daemon stops.
        poll_interval: seconds between rescans that look for changes (0: only on demand).
        health_interval: seconds between checks that each origin answers.
        origin_wait: seconds a mount waits at start for origins that are not there yet.
        cache_dir: where cached chunks of origin files are kept (origins with caching on).
        cache_max_mb: the most the cache may hold, in MiB.
        cache_retry: seconds between attempts to use a cache disk that failed (full, gone, read-only).
        log_level: one of LOG_LEVELS.
    """

    origins: tuple[OriginConfig, ...]
    state_dir: Path
    template: str = DEFAULT_TEMPLATE
    mountpoint: Path | None = None
    allow_other: bool = False
    auto_unmount: bool = False
    read_timeout: float = 10.0
    attr_timeout: float = 300.0
    drain_timeout: float = 5.0
    poll_interval: float = 300.0
    health_interval: float = 10.0
    origin_wait: float = 30.0
    cache_dir: Path = field(default_factory=default_cache_dir)
    cache_max_mb: int = 4096
    cache_retry: float = 30.0
    log_level: str = "INFO"


_TOP_KEYS = {
    "origin": list,
    "state_dir": str,
    "template": str,
    "mountpoint": str,
    "allow_other": bool,
    "auto_unmount": bool,
    "read_timeout": (int, float),
    "attr_timeout": (int, float),
    "drain_timeout": (int, float),
    "poll_interval": (int, float),
    "health_interval": (int, float),
    "origin_wait": (int, float),
    "cache_dir": str,
    "cache_max_mb": int,
    "cache_retry": (int, float),
    "log_level": str,
}
_ORIGIN_KEYS: dict[str, Any] = {"path": str, "url": str, "priority": int, "cache": bool}


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Config) if f.default is not MISSING}
_SECONDS = (
    "read_timeout",
    "attr_timeout",
    "drain_timeout",
    "poll_interval",
    "health_interval",
    "origin_wait",
    "cache_retry",
)


def folders(values: Mapping[str, Any]) -> tuple[Path, Path]:
    """The state and cache directories that config values (file and command line merged) name, or
    their defaults; absolute."""
    state_dir = absolute(Path(values.get("state_dir") or default_state_dir()))
    cache_dir = absolute(Path(values.get("cache_dir") or default_cache_dir()))
    return state_dir, cache_dir


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and type-check a TOML config file; raise ConfigError with one line on any problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(_utf8_text(raw, path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    _check_keys(data, _TOP_KEYS, str(path))
    for index, origin in enumerate(data.get("origin", [])):
        if not isinstance(origin, dict):
            raise ConfigError(f"{path}: [[origin]] entry {index + 1} must be a table")
        where = f"{path}, [[origin]] entry {index + 1}"
        if "path" in origin and "url" in origin:
            raise ConfigError(f"{where}: give either 'url' or 'path', not both")
        if "path" not in origin and "url" not in origin:
            raise ConfigError(f"{where}: has no 'url' (or 'path' for a local folder)")
        location = origin.get("url", origin.get("path"))
        scheme = scheme_of(location) if isinstance(location, str) and is_url(location) else None
        _check_keys(origin, _ORIGIN_KEYS | _scheme_keys(scheme), where)
    return data


def _scheme_keys(scheme: str | None) -> dict[str, Any]:
    """The settings an `[[origin]]` table of this scheme may hold besides the common ones."""
    if scheme is None:
        return {}
    return dict(SCHEME_KEYS.get(scheme, {}))  # a scheme's keys name its secret files too


def _utf8_text(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path} is UTF-16; save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8 (line {line}: byte 0x{raw[exc.start]:02x})") from None


def _check_keys(data: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        if isinstance(value, str) and "\0" in value:
            raise ConfigError(f"{where}: NUL character in '{key}'")
        expected = schema[key]
        if isinstance(value, bool) and expected is not bool and bool not in _as_tuple(expected):
            raise ConfigError(f"{where}: '{key}' must be {_type_name(expected)}, not a boolean")
        if not isinstance(value, expected):
            raise ConfigError(f"{where}: '{key}' must be {_type_name(expected)}")


def _as_tuple(expected: Any) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _type_name(expected: Any) -> str:
    names = {str: "a string", bool: "true or false", int: "a whole number", float: "a number", list: "a list"}
    return " or ".join(dict.fromkeys(names[t] for t in _as_tuple(expected)))


def build_config(file_values: Mapping[str, Any], overrides: Mapping[str, Any]) -> Config:
    """Merge config-file values with command-line overrides (which win) and validate the result.

    `overrides` uses the same keys as the file, with `origin` as a list of path strings; keys whose
    value is None are ignored.
    """
    merged: dict[str, Any] = dict(file_values)
    merged.update({key: value for key, value in overrides.items() if value is not None})
    for key, value in merged.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and "\0" in item for item in values):
            raise ConfigError(f"{key} contains a NUL character")
    origins = _origins(merged.get("origin", []))
    if not origins:
        raise ConfigError("no origin given: --origin PATH, or [[origin]] in the config")
    level = str(merged.get("log_level", _DEFAULTS["log_level"])).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, not '{level}'")
    timeouts = {key: float(merged.get(key, _DEFAULTS[key])) for key in _SECONDS}
    for key, value in timeouts.items():
        lowest = 0.0 if key in ("poll_interval", "origin_wait") else 0.001
        if not lowest <= value <= 86400:
            raise ConfigError(f"{key} must be between {lowest:g} and 86400 seconds, not {value:g}")
    mountpoint = merged.get("mountpoint")
    state_dir, cache_dir = folders(merged)
    return Config(
        origins=origins,
        state_dir=state_dir,
        template=str(merged.get("template", _DEFAULTS["template"])),
        mountpoint=absolute(Path(mountpoint)) if mountpoint else None,
        allow_other=bool(merged.get("allow_other", _DEFAULTS["allow_other"])),
        auto_unmount=bool(merged.get("auto_unmount", _DEFAULTS["auto_unmount"])),
        read_timeout=timeouts["read_timeout"],
        attr_timeout=timeouts["attr_timeout"],
        drain_timeout=timeouts["drain_timeout"],
        poll_interval=timeouts["poll_interval"],
        health_interval=timeouts["health_interval"],
        origin_wait=timeouts["origin_wait"],
        cache_retry=timeouts["cache_retry"],
        cache_dir=cache_dir,
        cache_max_mb=_positive(merged.get("cache_max_mb", _DEFAULTS["cache_max_mb"]), "cache_max_mb"),
        log_level=level,
    )


def _positive(value: Any, key: str) -> int:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a whole number above 0, not {value!r}")
    return value


def _origins(raw: list[Any]) -> tuple[OriginConfig, ...]:
    origins = []
    for position, item in enumerate(raw):
        table: Mapping[str, Any] = item if isinstance(item, Mapping) else {}
        location = str(item.get("url", item.get("path", ""))) if table else str(item)
        priority, cache = int(table.get("priority", position)), table.get("cache")
        if not location:
            raise ConfigError("an origin path is empty")
        if is_url(location):
            where = f"origin {position + 1}"
            remote = remote_config(location, table, where)
            origins.append(OriginConfig(path=None, priority=priority, cache=cache, remote=remote))
        else:
            origins.append(OriginConfig(path=absolute(Path(location)), priority=priority, cache=cache))
    seen: set[bytes] = set()
    for origin in origins:
        if origin.root in seen:
            raise ConfigError(f"origin {os.fsdecode(origin.root)} is given twice")
        seen.add(origin.root)
    return tuple(sorted(origins, key=lambda o: o.priority))


def absolute(path: Path) -> Path:
    """`path` made absolute (`~` expanded); ConfigError for a NUL, which no path can contain."""
    if "\0" in str(path):
        raise ConfigError(f"path {str(path)!r} contains a NUL character")
    return Path(os.path.abspath(os.path.expanduser(path)))
