"""A Debian machine with a real systemd as PID 1, in a `systemd-nspawn` container, for the system tier.

Owns: the cached root filesystems and the containers booted from them.
- `base_rootfs(suite)`: `debootstrap --variant=minbase` of a Debian suite with systemd, D-Bus, FUSE
  and Python, built once into `CACHE/<suite>-base` (into a temporary folder, renamed when complete)
  and kept between runs.
- `installed_rootfs(suite, repo)`: a copy of that base (`CACHE/<suite>-installed-<checkout>`, one per
  checkout folder) into which the repository's files are copied at `/opt/musicfs` and the README's
  set-up command (`bash scripts/setup.sh`) is run, as a user installs MusicFS. The copy is kept
  between runs, so a later run only refreshes the files and runs the (idempotent) set-up again.
- `fresh_rootfs(suite)`: a Debian `suite` with nothing but its required packages, cached likewise,
  on which the README's own commands are run (through an `Overlay`, so it stays fresh).
- `Container`: one machine booted from an overlay of a root filesystem, so every test gets its own
  changes and the cached tree is never written while it boots. `run` executes a command inside
  (`nsenter -t PID1 -a`, a clean environment), `boot`/`poweroff` may be called again to reboot the
  same machine, and `destroy` removes everything it made: a container still up is powered off, then
  its processes are killed by PID, its cgroups removed, the overlay unmounted.

How a container is started on a host whose PID 1 is not systemd and which has no system bus (the
hybrid cgroup layout of these hosts: v1 controllers, `name=systemd` v1 and cgroup2 at
`/sys/fs/cgroup/unified`): the launcher first moves itself into a fresh cgroup of its own in the
`systemd` and `unified` hierarchies, then runs `systemd-nspawn --register=no --keep-unit`, which puts
the container in that cgroup instead of asking a system bus for a scope. Every process in those
cgroups was started by us, which is what makes killing them safe. A set-up run needs the network
(apt, pip), so it shares the host's; a booted machine has `--private-network` (loopback only).

Concurrency: one test thread per container; `machine_lock` is held while the cached trees are built or
refreshed, so parallel workers (xdist) and runs wait for one build; booted overlays never write them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("MUSICFS_SYSTEM_CACHE", "/var/cache/musicfs-test"))
MIRROR = "http://deb.debian.org/debian"
# What a Debian machine booted with systemd has (libpam-systemd, which systemd recommends, gives each
# user a systemd of their own), and nothing MusicFS needs beyond that: the README's set-up command
# must install the rest (compiler, headers, venv) itself.
BASE_PACKAGES = ("systemd", "systemd-sysv", "libpam-systemd", "dbus", "fuse3", "python3")
# Bumped when BASE_PACKAGES or the way the base is built changes, so a stale cache is rebuilt.
BASE_VERSION = "2"
FRESH_VERSION = "1"
REPO_IN_CONTAINER = "/opt/musicfs"
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 60.0
SETUP_TIMEOUT = 1800.0
# The host's certificate authorities, for a set-up run behind a TLS-inspecting proxy: pip inside
# trusts what the host trusts (apt fetches over plain HTTP and checks signatures instead).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_CONTAINER = "/run/host-ca-certificates.crt"


class ContainerError(AssertionError):
    """The container machinery could not do what a test needs; the message says what and why."""


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Held while the cached trees are built or refreshed: by one process at a time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _require(*programs: str) -> None:
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        raise ContainerError(
            f"missing {', '.join(missing)}: the system tier needs Debian's systemd-container and "
            "debootstrap packages (bash scripts/setup.sh --test installs them)"
        )


def base_rootfs(suite: str) -> Path:
    """The minimal bootable Debian `suite`, built once and kept in the cache."""
    return _debootstrap(suite, "base", BASE_PACKAGES, BASE_VERSION)


def fresh_rootfs(suite: str) -> Path:
    """A fresh Debian `suite` with nothing but its required packages (no systemd, no Python): what
    the README's commands must cope with. Built once, kept in the cache, only ever used as the
    lower layer of an overlay."""
    return _debootstrap(suite, "fresh", (), FRESH_VERSION)


def _debootstrap(suite: str, kind: str, include: Sequence[str], version: str) -> Path:
    _require("debootstrap")
    target = CACHE / f"{suite}-{kind}"
    stamp = target / ".musicfs-base"
    if stamp.is_file() and stamp.read_text() == version:
        return target
    building = CACHE / f"{suite}-{kind}.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    log = CACHE / f"{suite}-{kind}.log"
    with open(log, "wb") as out:
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                *([f"--include={','.join(include)}"] if include else []),
                suite,
                str(building),
                MIRROR,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=SETUP_TIMEOUT,
        )
    if done.returncode != 0:
        raise ContainerError(f"debootstrap of {suite} failed ({done.returncode}); see {log}")
    (building / ".musicfs-base").write_text(version)
    building.rename(target)
    return target


def installed_rootfs(suite: str, repo: Path) -> Path:
    """The base with MusicFS installed from `repo` by the README's set-up command, refreshed when the
    checkout changed. One tree per checkout folder: a run from another checkout (another branch, CI's
    clone) never changes files under the overlays of this one. A new tree starts as a copy of the
    newest one (its packages and virtualenv are then reused) or of the base."""
    base = base_rootfs(suite)
    prefix = f"{suite}-installed-"
    target = CACHE / (prefix + hashlib.sha256(os.fsencode(repo.resolve())).hexdigest()[:12])
    if not _complete(target):
        shutil.rmtree(target, ignore_errors=True)
        trees = [tree for tree in CACHE.glob(prefix + "*") if tree.suffix == "" and _complete(tree)]
        seed = max(trees, key=lambda tree: tree.stat().st_mtime, default=base)
        copying = target.with_name(target.name + ".copying")
        shutil.rmtree(copying, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(seed), str(copying)], check=True)
        copying.rename(target)
    installed_stamp = target / ".musicfs-installed"
    files = repository_files(repo)
    digest = _digest(repo, files)
    if installed_stamp.is_file() and installed_stamp.read_text() == digest:
        return target
    installed_stamp.unlink(missing_ok=True)
    copy_repository(repo, files, target / REPO_IN_CONTAINER.lstrip("/"))
    log = target.with_name(target.name + "-setup.log")
    done = run_in_rootfs(target, ["bash", f"{REPO_IN_CONTAINER}/scripts/setup.sh"], log=log)
    if done.returncode != 0:
        raise ContainerError(
            f"bash scripts/setup.sh inside {suite} failed ({done.returncode}):\n{log.read_text()[-4000:]}"
        )
    installed_stamp.write_text(digest)
    os.utime(target)  # the newest tree seeds the next checkout's
    return target


def _complete(tree: Path) -> bool:
    stamp = tree / ".musicfs-base"
    return stamp.is_file() and stamp.read_text() == BASE_VERSION


def _digest(repo: Path, files: list[str]) -> str:
    """Names and contents of the repository's files: the set-up runs again when any of them changed."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(os.fsencode(name) + b"\0" + hashlib.sha256((repo / name).read_bytes()).digest())
    return digest.hexdigest()


def repository_files(repo: Path) -> list[str]:
    """The files a clone of `repo` would hold, as they are in its work tree (uncommitted edits too)."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in os.fsdecode(listed).split("\0") if name and (repo / name).exists()]


def copy_repository(repo: Path, files: list[str], destination: Path) -> None:
    """`destination` holds exactly `files` of `repo`, keeping only its `.venv` from before."""
    if destination.exists():
        for entry in destination.iterdir():
            if entry.name != ".venv":
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)


class _Cgroup:
    """A fresh cgroup of ours in each hierarchy systemd-nspawn needs; removed with what is left in it."""

    def __init__(self) -> None:
        self.name = f"musicfs-system-{uuid.uuid4().hex[:12]}"
        self.paths = [hierarchy / self.name for hierarchy in CGROUP_HIERARCHIES]
        for hierarchy in CGROUP_HIERARCHIES:
            if not (hierarchy / "cgroup.procs").exists():
                raise ContainerError(f"{hierarchy} is not a cgroup hierarchy: the system tier needs it")
        for path in self.paths:
            path.mkdir()

    def enter(self) -> None:
        """Move the calling process (the launcher, before it execs nspawn) into the cgroups."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.paths:
            for procs in path.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(pid) for pid in procs.read_text().split())
        return found

    def remove(self) -> None:
        """Kill what is still in our cgroups (only ever processes we started) and remove them."""
        deadline = time.monotonic() + 10
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for path in self.paths:
            if path.exists():
                for folder in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if folder.is_dir():
                        with contextlib.suppress(OSError):
                            folder.rmdir()
                with contextlib.suppress(OSError):
                    path.rmdir()
        left = [str(path) for path in self.paths if path.exists()]
        if left:
            raise ContainerError(f"could not remove cgroups {left}; processes left: {self.pids()}")


def run_in_rootfs(
    rootfs: Path,
    command: Sequence[str],
    *,
    log: Path,
    chdir: str = REPO_IN_CONTAINER,
    binds: Sequence[str] = (),
    timeout: float = SETUP_TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """Run `command` in `rootfs` without booting it (a set-up step), sharing the host's network;
    `binds` are host paths bound at the same place (`/dev/fuse` for a mount)."""
    _require("systemd-nspawn")
    env = dict(CLEAN_ENV)
    mounts = [f"--bind={path}" for path in binds]
    if HOST_CA_BUNDLE.is_file():
        mounts.append(f"--bind-ro={HOST_CA_BUNDLE}:{CA_IN_CONTAINER}")
        env |= {name: CA_IN_CONTAINER for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    cgroup = _Cgroup()
    try:
        with open(log, "wb") as out:
            return subprocess.run(
                [
                    "systemd-nspawn",
                    "--quiet",
                    "--register=no",
                    "--keep-unit",
                    "--pipe",
                    *mounts,
                    "-D",
                    str(rootfs),
                    "--chdir",
                    chdir,
                    "env",
                    "-i",
                    *(f"{key}={value}" for key, value in env.items()),
                    *command,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=cgroup.enter,
                timeout=timeout,
            )
    finally:
        cgroup.remove()


def _descendants(pid: int) -> Iterator[int]:
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                yield int(child)
                yield from _descendants(int(child))


def _is_namespace_init(pid: int) -> bool:
    """PID 1 of a PID namespace below ours (its NSpid line ends in 1)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            return len(fields) > 1 and fields[-1] == "1"
    return False


class Overlay:
    """`lower` seen at `work/root` with every change going to `work/upper`: a private copy for free."""

    def __init__(self, lower: Path, work: Path) -> None:
        self.work = work
        self.root = work / "root"
        upper, scratch = work / "upper", work / "overlay-work"
        for folder in (self.root, upper, scratch):
            folder.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={lower},upperdir={upper},workdir={scratch}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)], check=True)
        self._mounted = True

    def remove(self) -> None:
        """Unmount and delete the changes."""
        if self._mounted:
            subprocess.run(["umount", str(self.root)], check=True, capture_output=True)
            self._mounted = False
        shutil.rmtree(self.work, ignore_errors=True)


class Container:
    """One booted machine over an overlay of `lower`, its changes in `work`."""

    def __init__(self, lower: Path, work: Path, name: str = "") -> None:
        _require("systemd-nspawn", "nsenter")
        self.name = name or f"musicfs-{uuid.uuid4().hex[:8]}"
        self.console_log = work / "console.log"
        self._nspawn: subprocess.Popen[bytes] | None = None
        self._cgroup: _Cgroup | None = None
        self.pid1 = 0
        self._overlay = Overlay(lower, work)
        self.root = self._overlay.root

    def path(self, inside: str) -> Path:
        """Where a path of the container's filesystem is on the host."""
        return self.root / inside.lstrip("/")

    @property
    def running(self) -> bool:
        return self._nspawn is not None and self._nspawn.poll() is None

    def boot(self) -> None:
        """Boot the machine and return once systemd says the boot finished ("running")."""
        assert not self.running, "already booted"
        self._cgroup = _Cgroup()
        with open(self.console_log, "ab") as console:
            self._nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--register=no",
                    "--keep-unit",
                    "--boot",
                    "--private-network",
                    "--bind=/dev/fuse",
                    f"--machine={self.name}",
                    "--console=read-only",
                    "-D",
                    str(self.root),
                ],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=self._cgroup.enter,
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        self.pid1 = self._wait_for_init(deadline)
        state = ""
        while time.monotonic() < deadline:
            done = self.run(["systemctl", "is-system-running", "--wait"], timeout=deadline - time.monotonic())
            state = done.stdout.decode().strip()
            if state in {"running", "degraded"}:
                break
            time.sleep(0.2)
        if state != "running":
            failed = self.run(["systemctl", "--failed", "--no-legend"]).stdout.decode()
            raise ContainerError(f"boot ended {state!r}; failed units:\n{failed}\n{self.console()}")

    def _wait_for_init(self, deadline: float) -> int:
        assert self._nspawn is not None
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited {self._nspawn.returncode}:\n{self.console()}")
            for pid in _descendants(self._nspawn.pid):
                if _is_namespace_init(pid):
                    return pid
            time.sleep(0.05)
        raise ContainerError(f"no PID 1 within {BOOT_TIMEOUT} s:\n{self.console()}")

    def console(self) -> str:
        """What the machine wrote to its console (systemd's boot and shutdown lines)."""
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def command(self, command: Sequence[str]) -> list[str]:
        """The host command line that runs `command` inside the machine, in a clean environment."""
        assert self.running, "the machine is not running"
        return [
            "nsenter",
            "-t",
            str(self.pid1),
            "-a",
            "env",
            "-i",
            *(f"{key}={value}" for key, value in CLEAN_ENV.items()),
            *command,
        ]

    def run(
        self, command: Sequence[str], *, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `command` inside the machine; its output is captured, its exit code returned."""
        return subprocess.run(
            self.command(command),
            capture_output=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def check(self, command: Sequence[str], *, timeout: float = 60) -> str:
        """Run `command` inside; fail with its output unless it exits 0; return its stdout."""
        done = self.run(command, timeout=timeout)
        if done.returncode != 0:
            raise ContainerError(
                f"{' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT) -> int:
        """`systemctl poweroff` inside; wait until nspawn exits and return its exit code."""
        assert self._nspawn is not None and self.running
        self.run(["systemctl", "poweroff"])
        try:
            code = self._nspawn.wait(timeout=timeout)
        finally:
            self._reap()
        return code

    def _reap(self) -> None:
        """After nspawn exited or must go: kill what is left in our cgroups (ours only), remove them."""
        if self._nspawn is not None and self._nspawn.poll() is None:
            self._nspawn.kill()
            self._nspawn.wait(timeout=30)
        self._nspawn = None
        self.pid1 = 0
        if self._cgroup is not None:
            cgroup, self._cgroup = self._cgroup, None
            cgroup.remove()

    def destroy(self) -> None:
        """Power off if still up (or kill what we started), unmount the overlay, delete the work folder."""
        try:
            if self.running:
                with contextlib.suppress(subprocess.TimeoutExpired, AssertionError):
                    self.poweroff(timeout=30)
            self._reap()
        finally:
            self._overlay.remove()


def main(argv: Sequence[str]) -> int:
    """`python -m tests.system.container SUITE`: build or refresh the cached machine before the tests,
    outside pytest's per-test timeout (the first build takes minutes: debootstrap, apt, pip)."""
    suite = argv[0] if argv else "bookworm"
    started = time.monotonic()
    with machine_lock():
        rootfs = installed_rootfs(suite, Path(__file__).resolve().parents[2])
    print(f"{suite} machine with MusicFS installed: {rootfs} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
