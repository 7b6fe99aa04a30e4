"""What only the PostgreSQL store has: the URL it is picked by and the doctor (partitions: test_partitions.py).

The contract both backends share (outcomes equal to SQLite's, restarts, erasure, retention, memory) is
tests/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from groomguard.app.runtime import build_engine
from groomguard.store import open_store
from groomguard.store.postgres import PostgresStore, redact
from groomguard.store.postgres import migrations as pg_migrations
from groomguard.store.sqlite import migrations as sqlite_migrations
from groomguard.testing import EventFactory, make_settings


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


async def test_text_compares_byte_by_byte_in_a_database_with_a_language_collation(
    pg_server: Any, tmp_path: Path
) -> None:
    """Migration 009: in a database created with an ICU en-US locale the store orders turns of one instant
    by id as Python (and the in-memory overlay) does, "B7" before "a3", not as English does."""
    name = "gg_icu_collation"
    admin = await asyncpg.connect(pg_server.url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    finally:
        await admin.close()
    url = pg_server.url(name)
    try:
        con = await asyncpg.connect(url)
        try:  # the premise: this database's own text order is not Python's
            assert await con.fetchval("SELECT 'a3' < 'B7'") is True and sorted(["a3", "B7"]) == ["B7", "a3"]
        finally:
            await con.close()
        ev = EventFactory()
        at = ev.tick()
        turns = [
            ev.message(author, "hi", at=at).model_copy(update={"message_id": mid})
            for author, mid in (("x", "a3"), ("y", "B7"))
        ]
        settings = pg_settings(url, tmp_path)
        engine = build_engine(settings, [])
        await engine.start()
        try:
            await engine.ingest(turns)
        finally:
            await engine.stop()
        store = open_store(settings.store)
        await store.open()
        try:
            found = await store.recent_turns(ev.community, "general", at, 10)
        finally:
            await store.close()
        assert [t.message_id for t in found] == ["B7", "a3"]
        con = await asyncpg.connect(url)
        try:
            other = await con.fetch(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C'"
            )
        finally:
            await con.close()
        assert not other, other
    finally:
        admin = await asyncpg.connect(pg_server.url())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
