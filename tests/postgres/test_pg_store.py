"""What only the PostgreSQL store has: the URL it is picked by and the doctor (partitions: test_partitions.py).

The contract both backends share (outcomes equal to SQLite's, restarts, erasure, retention, memory) is
tests/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from groomguard.store import open_store
from groomguard.store.postgres import PostgresStore, redact
from groomguard.store.postgres import migrations as pg_migrations
from groomguard.store.sqlite import migrations as sqlite_migrations
from groomguard.testing import make_settings


def test_both_stores_have_the_same_migration_numbers() -> None:
    assert [v for v, _ in pg_migrations()] == [v for v, _ in sqlite_migrations()]


def pg_settings(url: str, tmp_path: Path) -> Any:
    settings = make_settings(tmp_path / "unused.db")
    settings.store.database_url = url
    return settings


async def test_open_store_picks_postgres_from_database_url(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_settings(pg_url, tmp_path).store)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        assert store.leader
        con = await asyncpg.connect(pg_url)
        versions = [r[0] for r in await con.fetch("SELECT version FROM schema_version ORDER BY version")]
        await con.close()
        assert versions == [v for v, _ in pg_migrations()]
    finally:
        await store.close()
    assert redact("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"


# Several engines on one database (partitions, leases, takeover, kill -9): tests/postgres/test_partitions.py.


def test_doctor_checks_postgres(pg_server: Any, tmp_path: Path) -> None:
    from groomguard.app.doctor import FAIL, OK, WARN, check_database

    async def create() -> None:
        con = await asyncpg.connect(pg_server.url())
        await con.execute("CREATE DATABASE gg_doctor")
        await con.close()

    asyncio.run(create())
    settings = pg_settings(pg_server.url("gg_doctor"), tmp_path)
    assert [c.status for c in check_database(settings)] == [WARN]  # empty: migrations apply at start

    async def migrate() -> None:
        store = PostgresStore(settings.store.database_url)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    assert [c.status for c in check_database(settings)] == [OK]
    settings.store.database_url = pg_server.url("gg_missing").replace("groomguard@", "groomguard:pw-zz9@")
    checks = check_database(settings)
    assert [c.status for c in checks] == [FAIL] and "pw-zz9" not in checks[0].detail
