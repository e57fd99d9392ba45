"""WebDAV shares as origins (issue 9): Nextcloud, Apache mod_dav, a NAS, rclone, WsgiDAV.

Owns: `WebDAVStore`, the `RemoteStore` of `webdav+http://HOST[:PORT]/PATH` (and `webdav+https://`)
over urllib3 (the HTTP client botocore already brings: pooled keep-alive connections shared by
threads, exact timeouts, no retries of its own): the listing, walked folder by folder with PROPFIND
`Depth: 1` (many servers refuse `Depth: infinity`), the pending folders carried in the page token;
stat (PROPFIND `Depth: 0`); ranged GETs of one version; the look at the root (a PROPFIND of it); and
which failures are worth trying again (`Transient`).
Versions: a strong ETag is the version (quoted where a listing gives it bare), and reads send
`If-Match` with it (412: `Changed`). A server that gives no ETag, or only a weak one (`W/...`, which
`If-Match` never matches), is read by its Last-Modified and size instead: the version is
`mtime:<Last-Modified>;size:<bytes>`, reads send `If-Unmodified-Since` and check the Last-Modified
and total size the answer tells, so a file rewritten within the same second with the same size is
the one change such a server hides.
Credentials: `username` + the password from `password_file`, sent as HTTP Basic authentication on
every request (so use https, or a trusted network); never logged (urllib3's loggers stay at
WARNING, and no message holds a header). TLS: webdav+https verifies the server's certificate and
host name, against `ca_file` when given, else the system's trusted CAs.
A server that ignores Range requests is refused with a clear error (a whole download per chunk read
would be silent and slow), except where the whole file was asked for anyway.
Concurrency: a urllib3 pool is safe to share between threads; it holds `POOL` connections (a
gateway's 16 threads, the scan's tag readers and the probes). The store keeps no other state.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes, urlsplit

import urllib3
import urllib3.exceptions

from musicfs import __version__
from musicfs.core.errors import OriginError, OriginFileGone
from musicfs.core.remotes import RemoteConfig
from musicfs.origins.remote import Changed, RemoteFile, RemoteOrigin, Transient

log = logging.getLogger(__name__)

POOL = 32
CONNECT_TIMEOUT = 5.0
PAGE = 1000  # files per listing page at least (a page ends with a folder)
FALLBACK = "mtime:"  # the start of a version made of Last-Modified and size (no strong ETag)
_DAV = "{DAV:}"
_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop>'
    b"<resourcetype/><getcontentlength/><getlastmodified/><getetag/></prop></propfind>"
)


def webdav_origin(origin_id: int, remote: RemoteConfig, *, timeout: float) -> RemoteOrigin:
    """The origin `remote` names (a webdav+http(s):// URL); `timeout` is the read deadline."""
    return RemoteOrigin(origin_id, WebDAVStore(remote, timeout), deadline=timeout)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One answer of a PROPFIND: a path below the root, and whether it is a folder."""

    relpath: bytes
    folder: bool
    file: RemoteFile


class WebDAVStore:
    """The files below a WebDAV folder (see the module docstring)."""

    def __init__(self, remote: RemoteConfig, timeout: float) -> None:
        self.url = remote.url
        scheme, _, rest = remote.url.partition("://")
        server, _, path = rest.partition("/")
        self._base = f"{scheme.removeprefix('webdav+')}://{server}"
        self._root = "/" + path + "/" if path else "/"
        self._root_bytes = unquote_to_bytes(self._root)
        logging.getLogger("urllib3").setLevel(logging.WARNING)
        self._headers = {"User-Agent": f"musicfs/{__version__}"}
        username, password = remote.setting("username"), remote.secret("password")
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        tls: dict[str, object] = {}
        if scheme == "webdav+https":
            tls["ssl_context"] = ssl.create_default_context(cafile=remote.setting("ca_file"))
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=POOL,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT), read=timeout),
            **tls,  # type: ignore[arg-type]
        )

    def list_page(self, token: str | None) -> tuple[Sequence[RemoteFile], str | None]:
        """Folders are listed one PROPFIND each, depth first, until a page holds `PAGE` files; the
        token is the folders still to list (a retried page lists the same folders again)."""
        pending: list[str] = json.loads(token) if token is not None else [""]
        files: list[RemoteFile] = []
        while pending and len(files) < PAGE:
            folder = os.fsencode(pending.pop())
            for entry in self._propfind(folder, depth=1):
                if entry.relpath == folder:
                    continue  # the folder itself
                if entry.folder:
                    name = entry.relpath.rsplit(b"/", 1)[-1]
                    if not name.startswith(b"."):  # hidden folders are never shown: not walked
                        pending.append(os.fsdecode(entry.relpath))
                else:
                    files.append(entry.file)
        return files, json.dumps(pending) if pending else None

    def stat(self, relpath: bytes) -> RemoteFile:
        entries = [e for e in self._propfind(relpath, depth=0) if e.relpath == relpath]
        if not entries or entries[0].folder:
            raise OriginFileGone(os.fsdecode(relpath))
        return entries[0].file

    def fetch(self, relpath: bytes, offset: int, length: int, etag: str) -> bytes:
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        fallback = etag.startswith(FALLBACK)
        modified = etag.removeprefix(FALLBACK).rpartition(";size:")[0]
        if not fallback:
            headers["If-Match"] = etag
        elif modified:
            headers["If-Unmodified-Since"] = modified
        answer = self._request("GET", relpath, headers, "read")
        if answer.status == 200 and not (offset == 0 and len(answer.data) <= length):
            raise OriginError("the server ignores ranged reads (Range); MusicFS needs them")
        if fallback:
            found = self._found(relpath, answer)
            if found.etag != etag:
                raise Changed(f"{os.fsdecode(relpath)} changed since it was opened")
        data: bytes = answer.data
        return data

    def fetch_first(self, relpath: bytes, length: int) -> tuple[RemoteFile, bytes]:
        """One ranged GET: its Content-Range tells the size, its ETag (or Last-Modified) the version."""
        try:
            answer = self._request("GET", relpath, {"Range": f"bytes=0-{length - 1}"}, "read")
        except _EmptyFile:
            return self.stat(relpath), b""
        data: bytes = answer.data
        return self._found(relpath, answer), data[:length]

    def is_empty(self) -> bool:
        entries = self._propfind(b"", depth=1)
        return not any(e.relpath != b"" for e in entries)

    def _found(self, relpath: bytes, answer: urllib3.BaseHTTPResponse) -> RemoteFile:
        """The file as a GET's answer tells it: size from Content-Range (or the body), the version."""
        total = str(answer.headers.get("Content-Range", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else len(answer.data)
        modified = answer.headers.get("Last-Modified")
        return RemoteFile(relpath, size, _ns(modified), _version(answer.headers.get("ETag"), modified, size))

    def _propfind(self, relpath: bytes, depth: int) -> list[_Entry]:
        headers = {"Depth": str(depth), "Content-Type": 'application/xml; charset="utf-8"'}
        what = "listing" if depth else "stat"
        answer = self._request("PROPFIND", relpath, headers, what, body=_PROPFIND, folder=depth == 1)
        if answer.status != 207:
            raise OriginError(f"PROPFIND answered {answer.status}, not a WebDAV listing")
        try:
            tree = ET.fromstring(answer.data)
        except ET.ParseError as exc:
            raise Transient(f"a listing that is not XML ({exc})") from None
        return [entry for entry in map(self._entry, tree.iter(f"{_DAV}response")) if entry is not None]

    def _entry(self, response: ET.Element) -> _Entry | None:
        """One `<response>`: None when it is not below the root or has no usable properties."""
        href = response.findtext(f"{_DAV}href", "").strip()
        path = unquote_to_bytes(urlsplit(href).path)
        if not (path + b"/").startswith(self._root_bytes):
            return None
        relpath = path[len(self._root_bytes) :].strip(b"/")
        props: dict[str, ET.Element] = {}
        for propstat in response.iter(f"{_DAV}propstat"):
            if " 200 " in (propstat.findtext(f"{_DAV}status", "") + " "):
                for prop in propstat.iter(f"{_DAV}prop"):
                    props |= {child.tag.removeprefix(_DAV): child for child in prop}
        kind = props.get("resourcetype")
        folder = kind is not None and kind.find(f"{_DAV}collection") is not None
        length = (props["getcontentlength"].text or "").strip() if "getcontentlength" in props else ""
        if not folder and not length.isdigit():
            return None
        size = int(length) if length.isdigit() else 0
        modified = props["getlastmodified"].text if "getlastmodified" in props else None
        etag = props["getetag"].text if "getetag" in props else None
        version = _version(etag, modified, size)
        return _Entry(relpath, folder, RemoteFile(relpath, size, _ns(modified), version))

    def _request(
        self,
        method: str,
        relpath: bytes,
        headers: dict[str, str],
        what: str,
        body: bytes | None = None,
        folder: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One request of `relpath` below the root; its answer when it is a success (2xx, 207)."""
        target = self._root_bytes + relpath + (b"/" if folder and relpath else b"")
        url = self._base + quote(target, safe="/")
        name = os.fsdecode(relpath) if relpath else "/"
        with self._errors(what, name):
            answer = self._pool.request(
                method, url, body=body, headers=self._headers | headers, redirect=False
            )
        status = answer.status
        if status < 300:
            return answer
        if status == 416:
            raise _EmptyFile(name)
        if status == 404:
            if not relpath:
                raise OriginError("there is no such folder on the server")
            raise OriginFileGone(name)
        if status == 412:
            raise Changed(f"{name} changed since it was opened")
        if status in (401, 403):
            raise OriginError(f"access denied ({status}): check username and password_file")
        if status >= 500 or status in (408, 429):
            raise Transient(f"{what} of {name}: {status} {answer.reason}")
        raise OriginError(f"{what} of {name}: {status} {answer.reason}")

    @contextlib.contextmanager
    def _errors(self, what: str, name: str) -> Iterator[None]:
        """urllib3's failures as origin errors: a bad certificate is final, the rest worth a retry."""
        try:
            yield
        except urllib3.exceptions.SSLError as exc:
            raise OriginError(f"TLS failed: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timeout, cut body
            raise Transient(f"{what} of {name}: {type(exc).__name__}: {exc}") from None


class _EmptyFile(OriginError):
    """A range was asked of an empty file (416): there are no bytes to give."""


def _version(etag: str | None, modified: str | None, size: int) -> str:
    """The server's strong ETag, else the Last-Modified and size (see the module docstring)."""
    etag = (etag or "").strip()
    if etag and not etag.startswith("W/"):
        return etag if etag.startswith('"') else f'"{etag}"'  # some servers list it unquoted
    return f"{FALLBACK}{(modified or '').strip()};size:{size}"


def _ns(modified: str | None) -> int:
    """An HTTP date as whole seconds in ns; 0 when the server gave none or one that is not a date."""
    if not modified:
        return 0
    try:
        return int(parsedate_to_datetime(modified.strip()).timestamp()) * 1_000_000_000
    except (TypeError, ValueError):
        return 0
