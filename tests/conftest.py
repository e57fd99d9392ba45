"""Shared fixtures: a real demo library (generated once per session) and private copies of it; a real
S3 server (SeaweedFS, one per test worker) and a private bucket prefix on it for each test; a real
WebDAV server (WsgiDAV, one per test that asks, so it may freeze, kill and restart it); a real
SSH server (OpenSSH's sshd, one per test: it starts in a few milliseconds) with a passphrase-protected
client key; the log check of `tests/checklogs.py` applies to every test."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from chaos.seaweedfs import SeaweedFS
from chaos.sshd import PASSPHRASE, Sshd
from chaos.webdavd import WebDAVServer
from musicfs.demo import DemoLibrary, generate_library
from tests.checklogs import _no_unexpected_logs

__all__ = ["_no_unexpected_logs"]

# CI runs the same examples every time (a red build must be reproducible); developers explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def demo_library(tmp_path_factory: pytest.TempPathFactory) -> DemoLibrary:
    """The demo library; read-only for tests (copy it with `library_copy` to change it)."""
    return generate_library(tmp_path_factory.mktemp("demo") / "library")


@pytest.fixture
def library_copy(demo_library: DemoLibrary, tmp_path: Path) -> Path:
    """A private copy of the demo library that a test may change."""
    destination = tmp_path / "origin"
    shutil.copytree(demo_library.root, destination)
    return destination


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A running SeaweedFS with an S3 gateway on 127.0.0.1, stopped by its PID at the end."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass
class S3Place:
    """Where a test keeps its objects: `s3://BUCKET/PREFIX` on `server`, reached with `client`."""

    server: SeaweedFS
    client: Any
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}"


_PLACES = itertools.count(1)


@pytest.fixture
def s3_place(seaweedfs: SeaweedFS) -> Iterator[S3Place]:
    """A prefix of its own for each test in the worker's bucket; the server is thawed afterwards, in
    case the test froze it."""
    client = seaweedfs.client()
    if not any(b["Name"] == "music" for b in client.list_buckets().get("Buckets", [])):
        client.create_bucket(Bucket="music")
    try:
        yield S3Place(seaweedfs, client, "music", f"t{os.getpid()}-{next(_PLACES)}")
    finally:
        seaweedfs.thaw()


@pytest.fixture
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDAVServer]:
    """A running WsgiDAV on 127.0.0.1 serving a folder of its own, stopped by its PID at the end."""
    server = WebDAVServer(tmp_path_factory.mktemp("webdav"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A running sshd of this test's own on 127.0.0.1 (its client key has `PASSPHRASE`), stopped with
    every connection's process by their PIDs at the end (thawed first, in case the test froze it)."""
    server = Sshd(tmp_path / "sshd", passphrase=PASSPHRASE)
    try:
        yield server.start()
    finally:
        server.stop()
