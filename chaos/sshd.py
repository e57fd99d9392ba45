"""A real SSH server for tests and benchmarks: Debian's OpenSSH `sshd -D -f CONFIG` on a free port of
127.0.0.1, with its own generated host key, one authorised client key (optionally with a
passphrase) and a known_hosts file naming the host key, serving SFTP (`internal-sftp`) to the user
the tests run as. Started and stopped by its PID whatever happened; `freeze` (SIGSTOP) and `kill`
act on the listener and every per-connection process it forked (OpenSSH gives each connection a
process of its own, in a session of its own, so stopping the listener alone would leave open
connections answering). `restart` starts it again on the same port with the same keys, as a
server that came back after a crash. Tests write the served files themselves, so they know every
byte independently of MusicFS.
Running as root, sshd wants its privilege separation folder (/run/sshd, made by Debian's service
start, not by the package): `start` makes it if it is missing, empty and root's, as the service would.
Concurrency: one `Sshd` is driven from one thread.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from chaos.seaweedfs import free_ports

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0
PASSPHRASE = "passphrase-0f-the-test-key-do-not-log"


def keygen(path: Path, passphrase: str = "", comment: str = "musicfs-test") -> Path:
    """A new ed25519 key pair at `path` (and `path`.pub); `path` is returned."""
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


class Sshd:
    """One sshd serving SFTP from `folder`'s keys; `user` is who may log in (the current user)."""

    def __init__(self, folder: Path, *, passphrase: str = "") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_ports(1)[0]
        self.host_key = keygen(folder / "host_ed25519", comment="musicfs-test-host")
        self.identity_file = keygen(folder / "id_ed25519", passphrase)
        self.passphrase = passphrase
        (folder / "authorized_keys").write_text(self.identity_file.with_suffix(".pub").read_text())
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line(self.host_key))
        self.log_path = folder / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def known_hosts_line(self, host_key: Path) -> str:
        kind, key = host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def host_key_fingerprint(self) -> str:
        """The host key's SHA256 fingerprint as ssh-keygen tells it (base64 without padding)."""
        shown = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key.with_suffix(".pub"))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return shown.split()[1].removeprefix("SHA256:")

    def url(self, folder: Path | str) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self.port}{folder}"

    def start(self) -> Sshd:
        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
                    f"AllowUsers {self.user}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",  # the keys live in a test's temporary folder
                    "PidFile none",
                    "MaxStartups 100",
                    "MaxSessions 64",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            privsep = Path("/run/sshd")
            privsep.mkdir(mode=0o755, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
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
                raise AssertionError(f"sshd exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd did not answer within {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pids(self) -> list[int]:
        """The listener and every process it forked (connections), children before their parents."""
        if self.process is None or self.process.poll() is not None:
            return []
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        found = [self.pid]
        for pid in found:
            found += [child for child, parent in parents.items() if parent == pid]
        return found[::-1]

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def freeze(self) -> None:
        """SIGSTOP everything: the kernel still accepts connections, nothing ever answers."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL everything, as a crash: open connections end (the kernel closes them)."""
        self._signal_all(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def restart(self) -> Sshd:
        self.kill()
        return self.start()

    def stop(self) -> None:
        """Stop the server and its connections by their PIDs (thawed first); killed after 3 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        self._signal_all(signal.SIGTERM)
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            self.kill()
