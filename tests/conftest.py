"""Shared fixtures: a temp database path, an event factory, and the real PostgreSQL server for both-backend tests."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from groomguard.testing import EventFactory

sys.path.insert(0, str(Path(__file__).resolve().parent / "postgres"))

from pgserver import PgServer, find_bindir

from tests.services import missing_service

_names = itertools.count(1)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "groomguard.db"


@pytest.fixture
def ev() -> EventFactory:
    return EventFactory()


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        missing_service("asyncpg is not installed: pip install 'groomguard[postgres]'")
    return asyncpg


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test session (fails, not skips, under make test when it is missing)."""
    _asyncpg()
    bindir = find_bindir()
    if bindir is None:
        missing_service("PostgreSQL server binaries (initdb, pg_ctl) are absent: run tests/postgres/setup.sh")
    server = PgServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> AsyncIterator[str]:
    """A URL to an empty database of its own."""
    asyncpg = _asyncpg()
    name = f"gg_test_{next(_names)}"
    admin = await asyncpg.connect(pg_server.url())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield pg_server.url(name)
    admin = await asyncpg.connect(pg_server.url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
