"""Shared fixtures: a temp database path and an event factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from groomguard.testing import EventFactory


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "groomguard.db"


@pytest.fixture
def ev() -> EventFactory:
    return EventFactory()
