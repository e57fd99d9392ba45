"""5.3 / 5.5: descriptors and memory are measured, and a warning comes near their limits."""

from __future__ import annotations

import logging
import resource

import pytest

from musicfs.daemon.resources import Resources, log_limits, measure, warn_if_near_limits


@pytest.mark.failure_mode("5.3")
def test_measure_reads_this_process() -> None:
    now = measure()
    assert now.open_fds >= 3 and now.fd_limit >= now.open_fds
    assert now.rss_bytes > 10 * 2**20


@pytest.mark.parametrize(
    ("resources", "warned"),
    [
        (Resources(100, 1024, 50 << 20, 1 << 30), False),
        (Resources(900, 1024, 50 << 20, None), True),
        (Resources(100, 1024, 900 << 20, 1 << 30), True),
    ],
)
@pytest.mark.allow_log(r"file descriptors open: raise LimitNOFILE", r"resident memory .* raise MemoryHigh")
@pytest.mark.failure_mode("5.5")
def test_warning_near_limits(resources: Resources, warned: bool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_near_limits(resources) is warned
    assert bool(caplog.records) is warned


@pytest.mark.failure_mode("5.3")
def test_the_descriptor_limit_in_force_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # The limit this process really has (a unit's LimitNOFILE= may be clamped by the host), read here
    # with getrlimit independently of the code under test, after lowering it to a known value.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1000, hard), hard))
        with caplog.at_level(logging.INFO, logger="musicfs.daemon.resources"):
            log_limits()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [record.getMessage() for record in caplog.records] == [
        f"file descriptor limit in force: {min(1000, hard)} (hard limit {hard})"
    ]
