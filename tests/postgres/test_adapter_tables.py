"""The adapters' tables are migration 005 of the one store: the same code runs on SQLite and PostgreSQL,
and `forget` reaches them on both (before, they lived in private SQLite files even with PostgreSQL set)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from groomguard.actions import ModAlert, Reason
from groomguard.adapters.discord.cardstore import Card, CardStore
from groomguard.adapters.matrix.store import Card as MatrixCard
from groomguard.adapters.matrix.store import MatrixStore, Mute, Prompt
from groomguard.app.runtime import build_engine
from groomguard.config import Settings
from groomguard.engine import Engine
from groomguard.findings import Evidence
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import T0, EventFactory, MemorySink, make_settings

from tests.legacy_rows import plant_matrix_invite

KID = "kidqx4"
SUSPECT = "grownqx8"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for an empty store on each backend."""
    settings = make_settings(tmp_path / "gg.db")
    if request.param == "postgres":
        settings.store.database_url = request.getfixturevalue("pg_url")
    return settings


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    engine = build_engine(settings, [MemorySink()])
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def _alert(case_id: int, suspect: str, children: tuple[str, ...]) -> ModAlert:
    return ModAlert(
        action_id=f"alert:g:{case_id}:1",
        platform="discord",
        community="g",
        case_id=case_id,
        suspect=suspect,
        risk=0.7,
        reasons=(Reason(detector="fan_out", text="contacted 6 under-18 accounts", score=0.7),),
        evidence=tuple(Evidence(kind="account", ref=c) for c in children),
        children=children,
        at=T0,
    )


async def test_discord_cards_round_trip_and_upsert(engine: Engine) -> None:
    cards = CardStore(engine.adapter_tables())
    await cards.open()
    try:
        await cards.save(Card(1, 10, 20, 30, 1, _alert(1, "111", ("222",)), undelivered=["222"]))
        await cards.save(Card(1, 10, 20, 31, 2, _alert(1, "111", ("222", "333")), undelivered=[]))
        card = await cards.card(1)
        assert card is not None and (card.message_id, card.version, card.undelivered) == (31, 2, [])
        assert card.alert.children == ("222", "333")
        assert [c.case_id for c in await cards.cards_for("111")] == [1]
        assert not await cards.is_done("a1")
        await cards.mark_done("a1")
        await cards.mark_done("a1")  # idempotent
        assert await cards.is_done("a1")
        assert await cards.forget("111") == 1 and await cards.card(1) is None
    finally:
        await cards.close()


async def test_matrix_tables_round_trip_and_upsert(engine: Engine) -> None:
    matrix = MatrixStore(engine.adapter_tables())
    await matrix.open()
    try:
        await matrix.save_sync_token("@bot:hs", "s1", T0)
        await matrix.save_sync_token("@bot:hs", "s2", T0)
        assert await matrix.sync_token("@bot:hs") == "s2"
        await matrix.save_card(MatrixCard("!mod:hs", "$e1", 1, 7, "c"))
        await matrix.save_card(MatrixCard("!mod:hs", "$e2", 2, 7, "c"))
        assert await matrix.card("c", 7) == MatrixCard("!mod:hs", "$e2", 2, 7, "c")
        assert await matrix.card_by_event("$e2") == MatrixCard("!mod:hs", "$e2", 2, 7, "c")
        await matrix.mark_delivered("a1", "$e2", T0)
        await matrix.mark_delivered("a1", None, T0)
        assert await matrix.delivered("a1")
        await matrix.save_mute(Mute("!r:hs", "@u:hs", T0 + timedelta(hours=1), 0))
        await matrix.save_mute(Mute("!r:hs", "@u:hs", T0 + timedelta(hours=2), -1))
        assert await matrix.mutes_due(T0 + timedelta(hours=3)) == [Mute("!r:hs", "@u:hs", T0 + timedelta(hours=2), 0)]
        await matrix.save_prompt(Prompt("$p", "c", 7, "ban", "@mod:hs"), T0)
        assert await matrix.prompt("$p") == Prompt("$p", "c", 7, "ban", "@mod:hs")
    finally:
        await matrix.close()


async def test_forget_reaches_the_adapter_tables(engine: Engine) -> None:
    """The engine's forget sweeps the adapters' rows in the same database, on either backend."""
    ev = EventFactory()
    await engine.ingest([ev.adult(SUSPECT), ev.minor(KID)])
    cards, matrix = CardStore(engine.adapter_tables()), MatrixStore(engine.adapter_tables())
    await cards.open()
    await matrix.open()
    try:
        await cards.save(Card(1, 10, 20, 30, 1, _alert(1, KID, ()), undelivered=[]))
        await cards.save(Card(2, 10, 20, 31, 1, _alert(2, SUSPECT, (KID, "someone")), undelivered=[KID]))
        await matrix.save_dm_room(KID, "!dm:hs")
        at = datetime(2026, 3, 2, tzinfo=UTC)
        await plant_matrix_invite(matrix, SUSPECT, KID, "$ev", at)
        await matrix.save_mute(Mute("!room:hs", KID, at + timedelta(hours=1), 0))

        removed = await engine.forget(KID)

        # Rows keyed by the kid go; cards that name the kid inside their JSON keep their place, kid erased.
        assert removed.get("matrix_dms") == 1 and removed.get("matrix_mutes") == 1, removed
        assert removed.get("matrix_invites") == 1 and removed.get("discord_cards (scrubbed)") == 2, removed
        assert await matrix.dm_room(KID) is None
        assert await matrix.db.fetch("SELECT request_id FROM matrix_invites") == []
        assert await matrix.mutes_due(at + timedelta(days=1)) == []
        for case_id in (1, 2):
            card = await cards.card(case_id)
            assert card is not None and KID not in card.alert.model_dump_json() and KID not in card.undelivered
    finally:
        await cards.close()
        await matrix.close()


async def test_an_old_sqlite_file_with_adapter_tables_migrates_keeping_their_rows(tmp_path: Path) -> None:
    """Before 005 the adapters created these tables themselves: the migration must keep what is there."""
    db = tmp_path / "old.db"
    store = SqliteStore(db)
    await store.open()
    await store.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM schema_version WHERE version >= 5")
    con.execute("ALTER TABLE notices DROP COLUMN stage")  # 006 (notice stage) is not in a version-4 file either
    for table in ("discord_cards", "discord_done", "matrix_sync"):
        con.execute(f"DROP TABLE {table}")
    # The tables as adapters of version 4 created them, with a row each.
    con.execute(
        "CREATE TABLE discord_cards (case_id INTEGER PRIMARY KEY, guild_id TEXT NOT NULL, channel_id TEXT NOT NULL, "
        "message_id TEXT NOT NULL, version INTEGER NOT NULL, alert TEXT NOT NULL, undelivered TEXT NOT NULL "
        "DEFAULT '[]', updated_at TEXT NOT NULL)"
    )
    con.execute("CREATE TABLE discord_done (action_id TEXT PRIMARY KEY, done_at TEXT NOT NULL)")
    con.execute("CREATE TABLE matrix_sync (account TEXT PRIMARY KEY, next_batch TEXT NOT NULL, saved_at TEXT NOT NULL)")
    con.execute("INSERT INTO discord_done VALUES ('a-old', '2026-01-01')")
    con.execute("INSERT INTO matrix_sync VALUES ('@bot:hs', 'old-token', '2026-01-01')")
    con.commit()
    con.close()

    store = SqliteStore(db)
    await store.open()
    try:
        cards, matrix = CardStore(store.tables()), MatrixStore(store.tables())
        await cards.open()
        await matrix.open()
        assert await cards.is_done("a-old")
        assert await matrix.sync_token("@bot:hs") == "old-token"
        await cards.close()
        await matrix.close()
    finally:
        await store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] >= 5
    con.close()
