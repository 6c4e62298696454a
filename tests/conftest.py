"""Shared pytest configuration. Fixture modules are registered here through ``pytest_plugins``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.settings import data_path

pytest_plugins: list[str] = ["tests.fixtures.kafka", "tests.fixtures.archive_data"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real shared data folder (``PRESERVE_DATA``); tests that need it skip with a clear message if absent."""
    path = data_path()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}: set PRESERVE_DATA to a copy of the shared data folder")
    return path


def pytest_report_header(config: pytest.Config) -> str:
    return f"PRESERVE_DATA={os.environ.get('PRESERVE_DATA', str(data_path()))}"
