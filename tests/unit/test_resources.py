"""5.3 / 5.5: descriptors and memory are measured, and a warning comes near their limits."""

from __future__ import annotations

import logging

import pytest

from musicfs.daemon.resources import Resources, measure, warn_if_near_limits


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
