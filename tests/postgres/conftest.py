"""PostgreSQL fixtures: one real server per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgserver import PgServer, find_bindir

from tests.services import missing_service

try:
    import asyncpg
except ImportError:
    missing_service("asyncpg is not installed: pip install 'groomguard[postgres]'", module=True)

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
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
