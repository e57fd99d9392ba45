"""dist/musicfs.service under a real systemd 252 (Debian 12): start, status, watchdog, crashes, stops.

Each test boots its own machine (`conftest.py`), with MusicFS installed by the README's set-up
command from this checkout and the unit installed as the README says.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests.system.container import REPO_IN_CONTAINER
from tests.system.machine import (
    CONFIG,
    MOUNTPOINT,
    MUSICFS,
    ORIGIN,
    STATE_DIR,
    TRACK,
    TRACK_COUNT,
    UNIT,
    MusicfsMachine,
)


@pytest.mark.failure_mode("2.10")
def test_start_returns_active_only_once_a_track_reads(service: MusicfsMachine) -> None:
    # `systemctl start` of a Type=notify unit returns at READY=1: the read right after it must work.
    done = service.container.run(
        ["sh", "-c", f"systemctl start {UNIT} && systemctl is-active {UNIT} && cat '{MOUNTPOINT}/{TRACK}'"]
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace") + service.journal()
    state, _, data = done.stdout.partition(b"\n")
    assert state == b"active"
    assert data == service.expected()
    assert service.show("StatusText")["StatusText"] == f"serving {TRACK_COUNT} tracks"


FAST_WATCHDOG = "[Service]\nWatchdogSec=4s\n"


@pytest.mark.failure_mode("3.1")
def test_watchdog_timestamps_advance_while_serving(service: MusicfsMachine) -> None:
    service.install_unit(watchdog=FAST_WATCHDOG)
    service.systemctl("start", UNIT)
    first = int(service.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
    assert first > 0, service.journal()

    def advanced() -> bool:
        return int(service.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) > first

    service.wait_for("a second WATCHDOG=1 (WatchdogSec=4s: one every 2 s)", advanced, timeout=10)
    assert service.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}


@pytest.mark.failure_mode("2.7")
def test_kill9_is_restarted_and_serves_again_with_a_clean_index(
    service: MusicfsMachine, record_property: Callable[[str, object], None]
) -> None:
    service.systemctl("start", UNIT)
    times = []
    for _ in range(3):
        pid = service.main_pid()
        service.kill("SIGKILL")
        times.append(service.wait_serving_again(pid))
    record_property("kill -9 to serving again (s)", ", ".join(f"{t:.2f}" for t in times))
    assert service.show("NRestarts")["NRestarts"] == "3"
    assert "did not stop cleanly" in service.journal()
    service.systemctl("stop", UNIT)
    # The index the crashes left: SQLite's integrity_check and MusicFS's own checks find nothing.
    service.container.check([MUSICFS, "fsck", "--state-dir", STATE_DIR, "--full"])


@pytest.mark.failure_mode("3.1")
def test_a_stopped_daemon_is_caught_by_the_watchdog_and_restarted(
    service: MusicfsMachine, record_property: Callable[[str, object], None]
) -> None:
    service.install_unit(watchdog=FAST_WATCHDOG)
    service.systemctl("start", UNIT)
    pid = service.main_pid()
    service.kill("SIGSTOP")
    took = service.wait_serving_again(pid, timeout=60)
    record_property("kill -STOP to serving again, WatchdogSec=4s (s)", f"{took:.2f}")
    assert "Watchdog timeout" in service.journal()
    assert service.show("NRestarts")["NRestarts"] == "1"


def _stopped_cleanly(service: MusicfsMachine) -> None:
    def settled() -> bool:
        return service.show("ActiveState")["ActiveState"] in {"inactive", "failed", "activating"}

    service.wait_for("the unit settled after the stop", settled)
    state = service.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert state == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainStatus": "0",
        "NRestarts": "0",
    }, service.journal()
    assert not service.mounted()
    # The daemon unmounted: the unit's post-stop cleanup has nothing to do and says nothing.
    journal = service.journal()
    assert "fusermount3" not in journal and "status=1/FAILURE" not in journal, journal


@pytest.mark.failure_mode("2.1")
def test_systemctl_stop_with_a_file_open_inside_exits_zero_and_leaves_no_mount(
    service: MusicfsMachine,
) -> None:
    service.systemctl("start", UNIT)
    # A player holding a track open, its working directory inside the mount (a unit of the machine).
    album = f"{MOUNTPOINT}/{TRACK.rpartition('/')[0]}"
    track = f"{MOUNTPOINT}/{TRACK}"
    service.container.check(
        [
            "systemd-run",
            "--unit=holder",
            f"--working-directory={album}",
            "sh",
            "-c",
            'exec 3<"$0"; exec sleep infinity',
            track,
        ]
    )

    def holding() -> bool:
        pid = service.container.check(
            ["systemctl", "show", "--property=MainPID", "--value", "holder"]
        ).strip()
        return (
            pid != "0"
            and track in service.container.run(["sh", "-c", f"readlink /proc/{pid}/fd/*"]).stdout.decode()
        )

    service.wait_for("the holder has the track open", holding)
    service.systemctl("stop", UNIT)
    _stopped_cleanly(service)


@pytest.mark.failure_mode("2.1")
def test_musicfs_shutdown_exits_zero_without_a_restart(service: MusicfsMachine) -> None:
    service.systemctl("start", UNIT)
    service.container.check([MUSICFS, "shutdown", MOUNTPOINT])
    _stopped_cleanly(service)


@pytest.mark.failure_mode("2.1")
def test_reload_rescans_without_a_restart(service: MusicfsMachine) -> None:
    service.systemctl("start", UNIT)
    pid = service.main_pid()
    # A thousand new files, so the rescan takes a while (reading their tags): a reload that returned
    # before it finished (kill -HUP) would be seen, the last file not yet shown.
    untagged = service.library / "Downloads/misc/untagged.flac"
    bulk = service.container.path(f"{ORIGIN}/bulk")
    bulk.mkdir()
    for number in range(1000):
        shutil.copyfile(untagged, bulk / f"{number}.flac")
    shutil.copyfile(untagged, service.container.path(f"{ORIGIN}/Downloads/misc/added on reload.flac"))
    service.systemctl("reload", UNIT)
    # The rescan is done when reload returns: the new file reads at once.
    done = service.container.run(["cat", f"{MOUNTPOINT}/Unknown Artist/Unknown Album/added on reload.flac"])
    assert done.returncode == 0, done.stderr.decode(errors="replace") + service.journal()
    assert done.stdout == untagged.read_bytes()
    assert service.show("ActiveState", "MainPID", "NRestarts") == {
        "ActiveState": "active",
        "MainPID": str(pid),
        "NRestarts": "0",
    }
    assert service.read() == service.expected()


@pytest.mark.failure_mode("2.1")
def test_enabled_service_starts_at_boot_and_stops_cleanly_at_poweroff(service: MusicfsMachine) -> None:
    service.systemctl("enable", UNIT)
    container = service.container
    assert container.poweroff() == 0
    container.boot()  # returns once the boot finished: multi-user.target, musicfs.service with it
    assert service.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}
    assert service.read() == service.expected()
    assert container.poweroff() == 0
    container.boot()
    previous = service.journal("--boot=-1")
    # The daemon's own last line, then systemd's verdict on its exit: 0, not killed at the timeout.
    assert "stopped cleanly" in previous and "Deactivated successfully" in previous, previous
    assert "Failed with result" not in previous and "code=killed" not in previous, previous


@pytest.mark.failure_mode("2.7")
def test_a_crash_loop_never_ends_in_failed_for_good(service: MusicfsMachine) -> None:
    # systemd's default start limit (5 starts in 10 s) turned six quick crashes into "failed" with no
    # further restart: the mount stayed gone until someone noticed.
    service.systemctl("start", UNIT)
    crashes = 8
    for _ in range(crashes):
        pid = service.main_pid()
        service.kill("SIGKILL")
        service.wait_serving_again(pid)
    assert service.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": str(crashes)}


@pytest.mark.failure_mode("user-errors")
def test_a_bad_config_fails_once_without_a_restart_loop(service: MusicfsMachine) -> None:
    service.container.path(CONFIG).write_text("[[origin]]\npath = 42\n")
    done = service.container.run(["systemctl", "start", UNIT])
    assert done.returncode != 0

    def settled() -> bool:
        return service.show("ActiveState")["ActiveState"] == "failed"

    service.wait_for("the unit failed", settled)
    state = service.show("Result", "ExecMainStatus", "NRestarts")
    assert state == {"Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}, service.journal()
    assert "musicfs: error:" in service.journal()


@pytest.mark.failure_mode("2.7")
def test_the_unit_cleans_the_dead_mount_a_kill9_leaves_when_not_restarted(service: MusicfsMachine) -> None:
    service.install_unit(no_restart="[Service]\nRestart=no\n")
    service.systemctl("start", UNIT)
    service.kill("SIGKILL")
    service.wait_for("the unit failed", lambda: service.show("ActiveState")["ActiveState"] == "failed")
    assert service.show("Result")["Result"] == "signal"
    # No "Transport endpoint is not connected" left behind: an empty folder.
    assert not service.mounted(), service.journal()
    assert service.container.check(["ls", "-A", MOUNTPOINT]) == ""


@pytest.mark.failure_mode("5.3")
def test_the_descriptor_limit_in_force_is_logged_at_start(service: MusicfsMachine) -> None:
    # LimitNOFILE=infinity is clamped (by fs.nr_open, or by the hard limit the container's systemd
    # was started with): the log must give what the daemon really got, which the kernel
    # tells in /proc/PID/limits, not what the unit asked for.
    service.install_unit(limit="[Service]\nLimitNOFILE=infinity\n")
    service.systemctl("start", UNIT)
    limits = service.container.check(["cat", f"/proc/{service.main_pid()}/limits"])
    soft, hard = next(line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files"))
    assert soft.isdigit(), limits
    assert f"file descriptor limit in force: {soft} (hard limit {hard})" in service.journal()


@pytest.mark.failure_mode("2.10")
def test_the_non_root_drop_in_serves_other_users_survives_a_crash_and_stops_cleanly(
    service: MusicfsMachine,
) -> None:
    # As the README says: a system user, user_allow_other in /etc/fuse.conf, allow_other in the config,
    # the drop-in. A User= alone broke the mount: the unit's hardening implied NoNewPrivileges=, so the
    # setuid fusermount3 could not mount.
    machine = service.container
    service.world_usable_fuse()
    machine.check(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "musicfs"]
    )
    machine.check(["sed", "-i", "s/^#user_allow_other/user_allow_other/", "/etc/fuse.conf"])
    machine.path(CONFIG).write_text(f'allow_other = true\n[[origin]]\npath = "{ORIGIN}"\n')
    service.install_drop_in("nonroot.conf")
    service.systemctl("start", UNIT)
    status = machine.check(["cat", f"/proc/{service.main_pid()}/status"])
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert uid == machine.check(["id", "-u", "musicfs"]).strip()
    # Another user (a player) reads the track.
    done = machine.run(service.as_user("nobody", "cat", f"{MOUNTPOINT}/{TRACK}"))
    assert done.returncode == 0, done.stderr.decode(errors="replace") + service.journal()
    assert done.stdout == service.expected()
    # A crash: the dead mount is the user's own, cleaned as that user before the restart serves.
    pid = service.main_pid()
    service.kill("SIGKILL")
    service.wait_serving_again(pid)
    service.systemctl("stop", UNIT)
    assert not service.mounted()
    state = service.show("ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, service.journal()


@pytest.mark.failure_mode("2.10")
def test_the_user_unit_runs_under_a_desktop_users_systemd(service: MusicfsMachine) -> None:
    machine = service.container
    service.world_usable_fuse()
    machine.check(["useradd", "--create-home", "alice"])
    uid = machine.check(["id", "-u", "alice"]).strip()
    home = "/home/alice"
    config = machine.path(f"{home}/.config/musicfs/musicfs.toml")
    config.parent.mkdir(parents=True)
    config.write_text(f'[[origin]]\npath = "{ORIGIN}"\n')
    units = f"{home}/.config/systemd/user"
    machine.path(f"{units}/musicfs.service.d").mkdir(parents=True)
    machine.check(["cp", f"{REPO_IN_CONTAINER}/dist/musicfs-user.service", f"{units}/musicfs.service"])
    # What `systemctl --user edit musicfs` would hold for MusicFS set up from the checkout.
    machine.path(f"{units}/musicfs.service.d/override.conf").write_text(
        f"[Service]\nExecStart=\nExecStart={MUSICFS} mount ${{MOUNTPOINT}} --config %E/musicfs/musicfs.toml\n"
        f"ExecReload=\nExecReload={MUSICFS} rescan ${{MOUNTPOINT}}\n"
    )
    machine.check(["chown", "-R", "alice:alice", f"{home}/.config"])
    machine.check(["loginctl", "enable-linger", "alice"])
    service.wait_for(
        "alice's systemd",
        lambda: machine.run(["systemctl", "is-active", "--quiet", f"user@{uid}.service"]).returncode == 0,
    )

    def as_alice(*command: str) -> list[str]:
        return service.as_user("alice", "env", f"XDG_RUNTIME_DIR=/run/user/{uid}", *command)

    machine.check(as_alice("systemctl", "--user", "enable", "--now", "musicfs"))
    mountpoint = f"{home}/MusicFS"
    done = machine.run(as_alice("cat", f"{mountpoint}/{TRACK}"))
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == service.expected()
    status = machine.check(
        as_alice("systemctl", "--user", "show", "--property=StatusText", "--value", "musicfs")
    )
    assert status.strip() == f"serving {TRACK_COUNT} tracks"
    machine.check(as_alice("systemctl", "--user", "reload", "musicfs"))
    machine.check(as_alice("systemctl", "--user", "stop", "musicfs"))
    shown = machine.check(
        as_alice(
            "systemctl", "--user", "show", "--property=ActiveState,Result,ExecMainStatus,NRestarts", "musicfs"
        )
    )
    assert dict(line.partition("=")[::2] for line in shown.splitlines() if line) == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainStatus": "0",
        "NRestarts": "0",
    }
    assert mountpoint not in machine.check(["cat", "/proc/self/mountinfo"])
