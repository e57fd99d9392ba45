"""Building the `Origin` each `[[origin]]` of the config names (issue 9).

Owns: `build_origin`, the one place that knows which class serves which kind of origin: a local
folder is a `LocalOrigin`; a remote URL goes to its scheme's builder (`s3://` to
`musicfs.origins.s3`, `webdav+http(s)://` to `musicfs.origins.webdav`, `sftp://` to
`musicfs.origins.sftp`), imported only when such an origin is configured, so a library of local
folders never loads a network client. A new scheme adds its branch here.
Concurrency: called once per origin at start, on the main thread; building touches no origin (a
frozen NAS or a dead server must not hang it).
"""

from __future__ import annotations

from musicfs.core.config import Config, OriginConfig
from musicfs.origins.base import Origin
from musicfs.origins.local import LocalOrigin


def build_origin(config: Config, setting: OriginConfig, origin_id: int) -> Origin:
    """The origin `setting` names, numbered `origin_id` by the index."""
    remote = setting.remote
    if remote is None:
        return LocalOrigin(origin_id, setting.root, shared_mount=config.allow_other)
    if remote.scheme == "s3":
        from musicfs.origins.s3 import s3_origin

        return s3_origin(origin_id, remote, timeout=config.read_timeout)
    if remote.scheme in ("webdav+http", "webdav+https"):
        from musicfs.origins.webdav import webdav_origin

        return webdav_origin(origin_id, remote, timeout=config.read_timeout)
    if remote.scheme == "sftp":
        from musicfs.origins.sftp import sftp_origin

        return sftp_origin(origin_id, remote, timeout=config.read_timeout)
    raise AssertionError(f"no origin for the scheme of {remote.url} (the config accepted it)")
