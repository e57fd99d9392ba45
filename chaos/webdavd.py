"""A real WebDAV server for tests and benchmarks: WsgiDAV on cheroot (both from PyPI), started as its
own process on a free port of 127.0.0.1, serving a folder at `/dav` to one user with a password (HTTP
Basic, so requests without it are refused), and stopped by its PID whatever happened (SIGCONT
first, in case a test froze it). Tests put files into the served folder themselves, so they know
every file's bytes independently of MusicFS; `restart` starts it again on the same port (a server
killed and brought back).
Concurrency: one `WebDAVServer` is driven from one thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from chaos.seaweedfs import free_ports

WSGIDAV = str(Path(sys.executable).with_name("wsgidav"))
START_TIMEOUT = 30.0
USERNAME = "music"
PASSWORD = "pa55-0f-the-webdav-test-server-do-not-log"
SHARE = "/dav"


class WebDAVServer:
    """One WsgiDAV process serving `folder / "share"` at `SHARE`; its config and log in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = folder / "share"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = folder / "wsgidav.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        """The origin URL of `path` below the share."""
        below = f"{SHARE}/{path}".rstrip("/")
        return f"webdav+http://127.0.0.1:{self.port}{below}"

    def start(self) -> WebDAVServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_ports(1)[0]
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "server": "cheroot",
            "provider_mapping": {SHARE: str(self.root)},
            "http_authenticator": {
                "domain_controller": None,  # the simple one, with the users below
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {USERNAME: {"password": PASSWORD}}}},
            "dir_browser": {"enable": False},
            "verbose": 1,
        }
        config_path = self.folder / "wsgidav.json"
        config_path.write_text(json.dumps(config))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [WSGIDAV, f"--config={config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_until_it_answers()
        return self

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"wsgidav exited with {self.process.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.endpoint + SHARE + "/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 without the password)
            except OSError:
                if time.monotonic() > deadline:
                    message = f"wsgidav did not answer within {START_TIMEOUT} s:\n{self.log()}"
                    raise AssertionError(message) from None
                time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def put(self, relpath: str, data: bytes) -> Path:
        """Write a file into the served folder (below the share): what the server will serve."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but the server never answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash: connections reset, the port refuses until `restart`."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def restart(self) -> WebDAVServer:
        """Start it again, on the same port and folder."""
        self.stop()
        return self.start()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """Stop the server by its PID (thawed first), killed if it has not stopped within 3 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
