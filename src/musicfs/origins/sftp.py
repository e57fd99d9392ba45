"""Folders on an SSH server as origins (issue 9): `sftp://[USER@]HOST[:PORT]/FOLDER`.

Owns: `SFTPStore`, the `RemoteStore` of an SFTP folder over paramiko (the threaded SSH client: the
remote framework calls from worker threads, so a blocking client fits it): the recursive listing
paged through its token (a JSON stack of folders still to list, `PAGE` entries or more a page),
stat, ranged reads (pipelined by paramiko's `readv`), the look at the root, host keys, and which
failures are worth trying again (`Transient`).
  - Version identity: SFTP (version 3, what OpenSSH speaks) tells a file's size and mtime in whole
    seconds, nothing more: no inode, no checksum. The ETag is made from the size, the mtime and the
    file's name (so two tracks of one size copied in the same second do not share a number; a move
    keeps name, size and mtime, hence its track). A change that keeps the size and the mtime (a tag
    edit that puts the old time back, within the same second) is NOT seen: neither by a rescan nor
    by a handle opened before it. Each read opens the file and compares its fstat with the version
    asked for (`Changed` otherwise), then reads from that open file, so a file replaced by rename
    under a reader is never mixed with its new version.
  - Host keys are always checked, against `known_hosts` (default ~/.ssh/known_hosts, hashed entries
    too): an unknown or changed key is an `OriginError` (never retried, never accepted) whose line
    names the fingerprint and the file; the daemon tells it as it tells any reason an origin is
    unavailable (the scan's warning, `status`). Nothing is ever written to known_hosts.
  - Authentication: the key in `identity_file` (its passphrase from `passphrase_file`), loaded when
    the origin is built (a wrong passphrase is a ConfigError: exit 2); without one, the ssh-agent
    and ~/.ssh/id_* keys, as ssh does. Key paths are not secret; key contents and passphrases are
    never logged, and paramiko's own logger is kept quiet (its errors are ours to tell).
  - Connections: one SSH connection per origin, made on first use, with up to `POOL` SFTP channels
    on it (parallel reads: a gateway's threads, the scan's tag readers); every wait (connect,
    banner, authentication, channel, each reply) has the read deadline. A connection that failed
    (timed out, reset, closed, the server gone) is dropped whole, and the next request connects
    again: a restarted server is used again by itself. For `RETRY_CONNECT` seconds after a connect
    failed, requests fail at once instead of each waiting a connect of its own.
  - Names that are not UTF-8 cannot be used (paramiko decodes every name as UTF-8): a folder
    holding one is skipped with a warning.
Concurrency: the connection and its idle channels are behind `_lock`; `_connecting` serialises
connects; a semaphore lets at most `POOL` threads hold a channel; each channel is used by one thread
at a time.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import os
import posixpath
import socket
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import paramiko

from musicfs.core.errors import ConfigError, OriginError, OriginFileGone
from musicfs.core.remotes import RemoteConfig
from musicfs.origins.remote import Changed, RemoteFile, RemoteOrigin, Transient

log = logging.getLogger(__name__)

POOL = 4  # SFTP channels on the one connection
PAGE = 1000  # a listing page ends after the folder that brings it to this many entries
CONNECT_TIMEOUT = 5.0
WINDOW = 1 << 24  # bytes a channel may have in flight: a 1 MiB chunk never waits on window updates
PACKET = 1 << 18
RETRY_CONNECT = 1.0  # seconds after a failed connect during which others fail at once


def sftp_origin(origin_id: int, remote: RemoteConfig, *, timeout: float) -> RemoteOrigin:
    """The origin `remote` names (an sftp:// URL); `timeout` is the read deadline."""
    return RemoteOrigin(origin_id, SFTPStore(remote, timeout), deadline=timeout)


class _Lost(Transient):
    """The connection failed (timed out, reset, closed): it is dropped, the next request connects."""


class _HostKeyRefused(paramiko.SSHException):
    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _HostKeyRefused(
            f"the host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in "
            f"{self.known_hosts}; not connecting (check its fingerprint with the server's owner, then "
            f"add it to that file)"
        )


class SFTPStore:
    """The files below an sftp:// URL's folder (see the module docstring)."""

    def __init__(self, remote: RemoteConfig, timeout: float) -> None:
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        self.url = remote.url
        parts = urlsplit(remote.url)
        self.user = parts.username or getpass.getuser()
        self.host = parts.hostname or ""
        self.port = parts.port or 22
        folder = parts.path
        if folder == "/~" or folder.startswith("/~/"):
            folder = folder[3:]  # below the user's home: SFTP resolves relative paths from there
        self.folder = folder
        self.timeout = timeout
        self.known_hosts = remote.setting("known_hosts") or os.path.expanduser("~/.ssh/known_hosts")
        self._key = _load_key(remote.setting("identity_file"), remote.secret("passphrase"))
        self._lock = threading.Lock()
        self._connecting = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL)
        self._client: paramiko.SSHClient | None = None
        self._idle: list[paramiko.SFTPClient] = []
        self._failed: tuple[float, OriginError] | None = None  # the last connect failure

    # -- the RemoteStore protocol ----------------------------------------------------------------

    def list_page(self, token: str | None) -> tuple[Sequence[RemoteFile], str | None]:
        folders: list[str] = [""] if token is None else json.loads(token)
        files: list[RemoteFile] = []
        with self._channel("listing") as sftp:
            while folders and len(files) < PAGE:
                folder = folders.pop()
                try:
                    entries = sftp.listdir_attr(self._path(folder))
                except UnicodeDecodeError:
                    log.warning(
                        "origin %s: skipping folder %s: it holds a name that is not UTF-8",
                        self.url,
                        folder or "/",
                    )
                    continue
                for entry in sorted(entries, key=lambda e: e.filename, reverse=True):
                    name = entry.filename
                    relpath = f"{folder}/{name}" if folder else name
                    mode = entry.st_mode or 0
                    if stat.S_ISDIR(mode):
                        if not name.startswith("."):
                            folders.append(relpath)
                    elif stat.S_ISREG(mode):
                        files.append(self._file(relpath, entry))
        return files, json.dumps(folders) if folders else None

    def stat(self, relpath: bytes) -> RemoteFile:
        with self._channel("stat", relpath) as sftp:
            attributes = sftp.stat(self._path(relpath.decode()))
        if not stat.S_ISREG(attributes.st_mode or 0):
            raise OriginFileGone(f"{os.fsdecode(relpath)} is not a file")
        return self._file(relpath.decode(), attributes)

    def fetch(self, relpath: bytes, offset: int, length: int, etag: str) -> bytes:
        name = relpath.decode()
        with self._channel("read", relpath) as sftp, sftp.open(self._path(name), "rb") as file:
            if self._file(name, file.stat()).etag != etag:
                raise Changed(f"{name} changed since it was opened")
            return b"".join(file.readv([(offset, length)]))

    def fetch_first(self, relpath: bytes, length: int) -> tuple[RemoteFile, bytes]:
        """One open: its fstat tells the size and the version, then the head is read from it."""
        name = relpath.decode()
        with self._channel("read", relpath) as sftp, sftp.open(self._path(name), "rb") as file:
            found = self._file(name, file.stat())
            size = min(length, found.size)
            return found, b"".join(file.readv([(0, size)])) if size else b""

    def is_empty(self) -> bool:
        try:
            with self._channel("listing") as sftp:
                return not sftp.listdir(self._path(""))
        except OriginFileGone:
            raise OriginError(f"there is no folder {self.folder or '~'} on the server") from None

    # -- helpers -----------------------------------------------------------------------------------

    def _path(self, relpath: str) -> str:
        if not relpath:
            return self.folder or "."
        return posixpath.join(self.folder, relpath) if self.folder else relpath

    def _file(self, relpath: str, attributes: paramiko.SFTPAttributes) -> RemoteFile:
        size, mtime = attributes.st_size or 0, int(attributes.st_mtime or 0)
        name = hashlib.sha256(posixpath.basename(relpath).encode()).hexdigest()[:12]
        return RemoteFile(relpath.encode(), size, mtime * 1_000_000_000, f"{size}-{mtime}-{name}")

    @contextlib.contextmanager
    def _channel(self, what: str, relpath: bytes = b"") -> Iterator[paramiko.SFTPClient]:
        """An SFTP channel of the connection (made if needed) for one request; failures as origin
        errors. A failed connection is dropped; a channel that served is given back."""
        name = os.fsdecode(relpath) if relpath else self.folder or "~"
        if not self._slots.acquire(timeout=self.timeout):
            raise Transient(f"{what} of {name}: all {POOL} SFTP channels stayed busy")
        try:
            client, sftp = self._take(what, name)
            try:
                yield sftp
            except OriginError:
                self._give_back(client, sftp)
                raise
            except BaseException as exc:
                error = _error(what, name, exc)
                if isinstance(error, _Lost) or not _active(client):
                    self._drop(client)
                else:
                    self._give_back(client, sftp)
                raise error from None
        finally:
            self._slots.release()

    def _take(self, what: str, name: str) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        with self._lock:
            client = self._client
            while self._idle and client is not None:
                sftp = self._idle.pop()
                if not sftp.get_channel().closed:  # type: ignore[union-attr]
                    return client, sftp
        if client is None or not _active(client):
            client = self._connect(what, name)
        try:
            transport = client.get_transport()
            opened = (
                None if transport is None else paramiko.SFTPClient.from_transport(transport, WINDOW, PACKET)
            )
            if opened is None:
                raise EOFError("the connection closed")
            opened.get_channel().settimeout(self.timeout)  # type: ignore[union-attr]
        except BaseException as exc:
            self._drop(client)
            error = _error(what, name, exc)
            raise error from None
        return client, opened

    def _connect(self, what: str, name: str) -> paramiko.SSHClient:
        with self._connecting:
            with self._lock:
                if self._client is not None and _active(self._client):
                    return self._client  # another thread connected meanwhile
                failed = self._failed
            if failed is not None and time.monotonic() - failed[0] < RETRY_CONNECT:
                raise failed[1]
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_RefuseUnknown(self.known_hosts))
            try:
                if os.path.exists(self.known_hosts):
                    client.load_host_keys(self.known_hosts)
                client.connect(
                    self.host,
                    self.port,
                    self.user,
                    pkey=self._key,
                    timeout=min(self.timeout, CONNECT_TIMEOUT),
                    allow_agent=self._key is None,
                    look_for_keys=self._key is None,
                    banner_timeout=self.timeout,
                    auth_timeout=self.timeout,
                    channel_timeout=self.timeout,
                )
            except BaseException as exc:
                client.close()
                error = self._connect_error(exc)
                with self._lock:
                    self._failed = (time.monotonic(), error)
                raise error from None
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(30)
            with self._lock:
                self._client, self._idle, self._failed = client, [], None
            return client

    def _connect_error(self, exc: BaseException) -> OriginError:
        where = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        if isinstance(exc, _HostKeyRefused):
            return OriginError(exc.line)
        if isinstance(exc, paramiko.BadHostKeyException):
            return OriginError(
                f"the host key of {where} has changed ({exc.key.get_name()} {exc.key.fingerprint}; "
                f"{self.known_hosts} names another): not connecting (if the server's key really "
                "changed, replace its line in that file)"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return OriginError(f"{where} refused the key for user {self.user}: check identity_file")
        return _error("connect", where, exc)

    def _give_back(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient) -> None:
        with self._lock:
            if client is self._client and len(self._idle) < POOL:
                self._idle.append(sftp)
                return
        sftp.close()

    def _drop(self, client: paramiko.SSHClient) -> None:
        with self._lock:
            if client is self._client:
                self._client, self._idle = None, []
        client.close()


def _active(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def _error(what: str, name: str, exc: BaseException) -> OriginError:
    """paramiko's and the socket's failures as origin errors: _Lost when the connection failed."""
    if isinstance(exc, OriginError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return OriginFileGone(name)
    if isinstance(exc, PermissionError):
        return OriginError(f"{what} of {name}: permission denied on the server")
    if isinstance(exc, socket.timeout):
        return _Lost(f"{what} of {name}: the server timed out")
    if isinstance(exc, EOFError | paramiko.SSHException | ConnectionError):
        return _Lost(f"{what} of {name}: {str(exc) or type(exc).__name__}")
    if isinstance(exc, OSError):  # no connection (refused), or the server's own failure
        return Transient(f"{what} of {name}: {exc.strerror or exc}")
    if isinstance(exc, Exception):
        return _Lost(f"{what} of {name}: {type(exc).__name__}: {exc}")
    raise exc


def _load_key(path: str | None, passphrase: str | None) -> paramiko.PKey | None:
    """The key `identity_file` holds; ConfigError (one line, no secret) when it cannot be loaded."""
    if path is None:
        return None
    secret = passphrase.encode() if passphrase else None  # cryptography wants bytes (stubs say str)
    try:
        return paramiko.PKey.from_path(path, secret)  # type: ignore[arg-type]
    except (paramiko.PasswordRequiredException, TypeError):  # cryptography's TypeError: no password
        if passphrase:
            raise ConfigError(f"cannot load identity_file {path}: wrong passphrase") from None
        raise ConfigError(
            f"identity_file {path} is encrypted: give its passphrase in passphrase_file"
        ) from None
    except (paramiko.SSHException, ValueError):
        problem = "wrong passphrase, or it is not" if passphrase else "it is not"
        raise ConfigError(f"cannot load identity_file {path} ({problem} an SSH private key)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read identity_file {path}: {exc.strerror}") from None
