"""Shared fixtures: a real demo library (generated once per session) and private copies of it; the
log check of `tests/checklogs.py` applies to every test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

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
