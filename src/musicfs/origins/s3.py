"""S3-compatible object stores as origins (issue 9): AWS, SeaweedFS, MinIO, Garage, Ceph, B2, Wasabi.

Owns: `S3Store`, the `RemoteStore` of `s3://BUCKET[/PREFIX]` over botocore (AWS's own client, kept
by AWS; boto3 adds nothing we use): the listing (ListObjectsV2 pages), stat (HEAD), ranged reads of
one version (GET with Range and If-Match; a tag reader's first GET tells the version itself), the
look at the root (a listing of one key), and which failures are worth trying again (`Transient`).
Credentials: `access_key_id` + the secret from `secret_access_key_file` in the origin's table, else
what botocore finds in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE and its files), else none (unsigned requests: a public bucket). The
instance and container metadata services are never asked (a start-up would wait on them). The
endpoint is the table's `endpoint`, else AWS_ENDPOINT_URL(_S3), else AWS; with an endpoint,
path-style addressing (every S3-compatible server takes it). The region: `region`, else
AWS_REGION/AWS_DEFAULT_REGION, else us-east-1. botocore retries nothing itself (`RemoteOrigin`
does, within the read deadline), and its loggers stay at WARNING, so no request detail reaches our
log.
Concurrency: a botocore client is safe to share between threads; its pool holds `POOL` connections
(a gateway's 16 threads, the scan's tag readers and the probes).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session
from botocore import UNSIGNED

from musicfs import __version__
from musicfs.core.errors import OriginError, OriginFileGone
from musicfs.core.remotes import RemoteConfig
from musicfs.origins.remote import Changed, RemoteFile, RemoteOrigin, Transient

log = logging.getLogger(__name__)

POOL = 32
CONNECT_TIMEOUT = 5.0
PAGE = 1000
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
_GONE_CODES = {"NoSuchKey", "NotFound", "404"}


def s3_origin(origin_id: int, remote: RemoteConfig, *, timeout: float) -> RemoteOrigin:
    """The origin `remote` names (an s3:// URL); `timeout` is the read deadline."""
    return RemoteOrigin(origin_id, S3Store(remote, timeout), deadline=timeout)


class S3Store:
    """The objects below `s3://BUCKET/PREFIX` (see the module docstring)."""

    def __init__(self, remote: RemoteConfig, timeout: float) -> None:
        self.url = remote.url
        bucket, _, prefix = remote.url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = _client(remote, timeout)

    def list_page(self, token: str | None) -> tuple[Sequence[RemoteFile], str | None]:
        asked: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": PAGE}
        if token is not None:
            asked["ContinuationToken"] = token
        with self._errors("listing"):
            answer = self._client.list_objects_v2(**asked)
        files = [
            RemoteFile(
                item["Key"][len(self.prefix) :].encode(),
                item["Size"],
                _ns(item["LastModified"]),
                item["ETag"],
            )
            for item in answer.get("Contents", ())
            if item["Key"].startswith(self.prefix)
        ]
        return files, answer.get("NextContinuationToken") if answer.get("IsTruncated") else None

    def stat(self, relpath: bytes) -> RemoteFile:
        with self._errors("stat", relpath):
            answer = self._client.head_object(Bucket=self.bucket, Key=self._key(relpath))
        return RemoteFile(relpath, answer["ContentLength"], _ns(answer["LastModified"]), answer["ETag"])

    def fetch(self, relpath: bytes, offset: int, length: int, etag: str) -> bytes:
        with self._errors("read", relpath):
            answer = self._client.get_object(
                Bucket=self.bucket,
                Key=self._key(relpath),
                Range=f"bytes={offset}-{offset + length - 1}",
                IfMatch=etag,
            )
            with contextlib.closing(answer["Body"]) as body:
                data: bytes = body.read()
        return data

    def fetch_first(self, relpath: bytes, length: int) -> tuple[RemoteFile, bytes]:
        """One ranged GET: its Content-Range tells the size, its ETag the version."""
        try:
            with self._errors("read", relpath):
                answer = self._client.get_object(
                    Bucket=self.bucket, Key=self._key(relpath), Range=f"bytes=0-{length - 1}"
                )
                with contextlib.closing(answer["Body"]) as body:
                    data: bytes = body.read()
        except _EmptyObject:
            return self.stat(relpath), b""
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else int(answer["ContentLength"])
        return RemoteFile(relpath, size, _ns(answer["LastModified"]), answer["ETag"]), data[:length]

    def is_empty(self) -> bool:
        with self._errors("listing"):
            answer = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        return not answer.get("Contents")

    def _key(self, relpath: bytes) -> str:
        return self.prefix + relpath.decode("utf-8", "surrogateescape")

    @contextlib.contextmanager
    def _errors(self, what: str, relpath: bytes = b"") -> Iterator[None]:
        """botocore's failures as origin errors: Transient when trying again may help."""
        name = os.fsdecode(relpath) if relpath else self.prefix or "/"
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            raise _client_error(exc, self.bucket, name) from None
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.ParamValidationError) as exc:
            raise OriginError(f"{what} of {name}: {exc}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as exc:  # no connection, reset, timeout, cut
            raise Transient(f"{what} of {name}: {exc}") from None


class _EmptyObject(OriginError):
    """A range was asked of an empty object (416): there are no bytes to give."""


def _client_error(exc: botocore.exceptions.ClientError, bucket: str, name: str) -> OriginError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code == "InvalidRange" or status == 416:
        return _EmptyObject(name)
    if code == "NoSuchBucket":
        return OriginError(f"there is no bucket named {bucket}")
    if code in _GONE_CODES or status == 404:
        return OriginFileGone(name)
    if code == "PreconditionFailed" or status == 412:
        return Changed(f"{name} changed since it was opened")
    if status in (401, 403):
        return OriginError(f"access to {name} denied ({code or status}): check the credentials")
    if code in _TRANSIENT_CODES or status >= 500:
        return Transient(f"{name}: {code or status}")
    return OriginError(f"{name}: {code or status} {error.get('Message', '')}".rstrip())


def _ns(when: datetime) -> int:
    """Whole seconds: a listing may tell milliseconds where a HEAD tells seconds."""
    return int(when.timestamp()) * 1_000_000_000


def _client(remote: RemoteConfig, timeout: float) -> Any:
    for name in ("botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    session = botocore.session.Session()
    providers = session.get_component("credential_provider")
    for provider in ("iam-role", "container-role"):
        providers.remove(provider)
    key_id, secret = remote.setting("access_key_id"), remote.secret("secret_access_key")
    if key_id is not None and secret is not None:
        session.set_credentials(key_id, secret)
    environment = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    endpoint = remote.setting("endpoint") or environment
    signed = session.get_credentials() is not None
    if not signed:
        log.info("origin %s: no credentials found; requests are not signed (a public bucket)", remote.url)
    config = botocore.config.Config(
        connect_timeout=min(timeout, CONNECT_TIMEOUT),
        read_timeout=timeout,
        retries={"total_max_attempts": 1},
        max_pool_connections=POOL,
        s3={"addressing_style": "path"} if endpoint else {},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra=f"musicfs/{__version__}",
        **({} if signed else {"signature_version": UNSIGNED}),
    )
    region = remote.setting("region") or session.get_config_variable("region") or "us-east-1"
    return session.create_client("s3", endpoint_url=endpoint, region_name=region, config=config)
