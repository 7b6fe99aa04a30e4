"""The PostgreSQL store against a real server: the SQLite contract, plus two engines sharing one database."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from groomguard.app.runtime import build_engine
from groomguard.engine import Engine
from groomguard.events import BaseEvent
from groomguard.store import open_store
from groomguard.store.postgres import PostgresStore, redact
from groomguard.store.postgres import migrations as pg_migrations
from groomguard.store.sqlite import migrations as sqlite_migrations
from groomguard.testing import EventFactory, MemorySink, make_settings, running_engine
from groomguard.testing.simulate import CommunitySpec, generate

CASE_COLUMNS = "community, suspect, status, round(risk::numeric, 6)::float8, alert_version, children, reasons"


def test_both_stores_have_the_same_migration_numbers() -> None:
    assert [v for v, _ in pg_migrations()] == [v for v, _ in sqlite_migrations()]


def pg_settings(url: str, tmp_path: Path) -> Any:
    settings = make_settings(tmp_path / "unused.db")
    settings.store.database_url = url
    return settings


def _stream(seed: int = 11) -> list[BaseEvent]:
    events, truth = generate(CommunitySpec(seed=seed))
    assert truth.groomers
    return events


def _unnumbered(action_id: str, suspect: str | None) -> str:
    """An alert's id with its case number replaced by the suspect: PostgreSQL numbers cases per partition
    (groomguard.store.partitions.CaseIds), SQLite one after another, and the rest of the id is the same."""
    kind, _, rest = action_id.partition(":")
    if kind != "alert" or suspect is None:
        return action_id
    community, _case, version = rest.rsplit(":", 2)
    return f"alert:{community}:{suspect}:{version}"


def sqlite_outcome(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(db)
    try:
        return {
            "events": con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM events").fetchone(),
            "cases": [
                tuple(r)
                for r in con.execute(
                    "SELECT community, suspect, status, round(risk, 6), alert_version, children, reasons FROM cases ORDER BY id"
                )
            ],
            "findings": [
                tuple(r)
                for r in con.execute(
                    "SELECT detector, community, suspect, score, reason, event_key FROM findings ORDER BY id"
                )
            ],
            "actions": sorted(
                _unnumbered(*r)
                for r in con.execute("SELECT a.id, c.suspect FROM actions a LEFT JOIN cases c ON c.id = a.case_id")
            ),
            "contacts": con.execute("SELECT COUNT(*) FROM contacts").fetchone()[0],
            "views": sorted(
                tuple(r) for r in con.execute("SELECT community, viewer, hour, to_minors, total FROM views")
            ),
        }
    finally:
        con.close()


async def pg_outcome(url: str) -> dict[str, Any]:
    con = await asyncpg.connect(url)
    try:
        return {
            "events": tuple(await con.fetchrow("SELECT COUNT(*), COUNT(DISTINCT key) FROM events")),
            "cases": [tuple(r) for r in await con.fetch(f"SELECT {CASE_COLUMNS} FROM cases ORDER BY id")],
            "findings": [
                tuple(r)
                for r in await con.fetch(
                    "SELECT detector, community, suspect, score, reason, event_key FROM findings ORDER BY id"
                )
            ],
            "actions": sorted(
                _unnumbered(*r)
                for r in await con.fetch("SELECT a.id, c.suspect FROM actions a LEFT JOIN cases c ON c.id = a.case_id")
            ),
            "contacts": await con.fetchval("SELECT COUNT(*) FROM contacts"),
            "views": sorted(
                tuple(r) for r in await con.fetch("SELECT community, viewer, hour, to_minors, total FROM views")
            ),
        }
    finally:
        await con.close()


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


async def test_append_is_idempotent_and_numbered_by_a_sequence(pg_url: str, ev: EventFactory) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        a, b = ev.message("x", "one"), ev.message("x", "nul \x00 inside")
        first = await store.append_events([a, b, a])
        again = await store.append_events([b, a])
        assert [e.key for _, e in first] == [a.key, b.key]
        assert again == []
        assert (await store.counts())["events"] == 2
        assert [e for _, e in await store.all_events_after(0, 10)] == [a, b]
        assert await store.known_keys([a.key, "nope"]) == {a.key}
    finally:
        await store.close()


async def test_same_outcome_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    events = _stream()
    async with running_engine(tmp_path / "ref.db") as (engine, _):
        await engine.ingest(events)
    reference = sqlite_outcome(tmp_path / "ref.db")
    assert reference["cases"]
    engine = build_engine(pg_settings(pg_url, tmp_path), [MemorySink()])
    await engine.start()
    try:
        for start in range(0, len(events), 500):
            await engine.ingest(events[start : start + 500])
        await engine.drain()
    finally:
        await engine.stop()
    assert await pg_outcome(pg_url) == reference


async def test_restart_mid_replay_loses_and_doubles_nothing(pg_url: str, tmp_path: Path) -> None:
    events = _stream()
    async with running_engine(tmp_path / "ref.db") as (engine, _):
        await engine.ingest(events)
    reference = sqlite_outcome(tmp_path / "ref.db")
    settings = pg_settings(pg_url, tmp_path)
    cut, stored_only = int(len(events) * 0.4), int(len(events) * 0.5)
    engine = build_engine(settings, [MemorySink()])
    await engine.start()
    await engine.ingest(events[:cut])
    # Stored (by a store-only process) but not processed, then the engine stops.
    producer = PostgresStore(settings.store.database_url, process=False)
    await producer.open()
    await producer.append_events(events[cut:stored_only])
    await producer.close()
    await engine.stop()
    again = build_engine(settings, [MemorySink()])
    await again.start()
    try:
        assert again.stats.processed == stored_only - cut
        await again.ingest(events)
        assert again.stats.duplicates == stored_only
    finally:
        await again.stop()
    assert await pg_outcome(pg_url) == reference


async def test_forget_leaves_no_trace(pg_url: str, tmp_path: Path, ev: EventFactory) -> None:
    events = [ev.adult("suspect"), ev.region("suspect", "north")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}"), ev.answer("suspect", f"kid{i}", "rejected")]
    events += [
        ev.message("suspect", "hello there", conversation="dm1", private=True, recipients=("kid0",)),
        ev.view("suspect", "kid1"),
    ]
    engine = build_engine(pg_settings(pg_url, tmp_path), [sink := MemorySink()])
    await engine.start()
    try:
        await engine.ingest(events)
        await engine.drain()
        assert any(getattr(a, "suspect", None) == "suspect" for a in sink.actions)
        removed = await engine.forget("suspect")
        assert removed["cases"] == 1
        assert removed["events"] == len(events) - 12
    finally:
        await engine.stop()
    con = await asyncpg.connect(pg_url)
    try:
        hits = []
        tables = [r[0] for r in await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in await con.fetch(f"SELECT * FROM {table}"):
                if any(isinstance(v, str) and "suspect" in v for v in row.values()):
                    hits.append((table, dict(row)))
        assert hits == []
        assert await con.fetchval("SELECT COUNT(*) FROM audit WHERE action = 'forget'") == 1
    finally:
        await con.close()


async def test_forget_a_child_scrubs_them_from_other_accounts_cases(
    pg_url: str, tmp_path: Path, ev: EventFactory
) -> None:
    events: list[BaseEvent] = [ev.adult("suspect")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}")]
    engine = build_engine(pg_settings(pg_url, tmp_path), [MemorySink()])
    await engine.start()
    try:
        await engine.ingest(events)
        await engine.drain()
        await engine.forget("kid5")
    finally:
        await engine.stop()
    con = await asyncpg.connect(pg_url)
    try:
        leftovers = []
        tables = [r[0] for r in await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in await con.fetch(f"SELECT * FROM {table}"):
                if any((isinstance(v, str) and '"kid5"' in v) or v == "kid5" for v in row.values()):
                    leftovers.append(table)
        assert leftovers == []
        assert await con.fetchval("SELECT COUNT(*) FROM cases WHERE suspect = 'suspect'") == 1
    finally:
        await con.close()


# Several engines on one database (partitions, leases, takeover, kill -9): tests/postgres/test_partitions.py.


@pytest.mark.parametrize("text", ["a\x00b", "\u200b\u202e" * 1000, "x" * 9_000])
async def test_hostile_text_is_stored(pg_url: str, tmp_path: Path, ev: EventFactory, text: str) -> None:
    engine = build_engine(pg_settings(pg_url, tmp_path), [MemorySink()])
    await engine.start()
    try:
        event = ev.message("a", text, conversation="c")
        assert await engine.ingest([event]) == 1
        stored = await engine.store.all_events_after(0, 10)  # type: ignore[attr-defined]
        assert [e for _, e in stored] == [event]
    finally:
        await engine.stop()


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


async def test_forget_child_leaves_the_id_in_no_column_and_twice_is_consistent(pg_url: str, tmp_path: Path) -> None:
    """Issue 12: conversation ids, request refs, other suspects' reasons and detector memory, on PostgreSQL."""
    from tests.test_erasure import KID, OTHER, _scenario

    engine = build_engine(pg_settings(pg_url, tmp_path), [MemorySink()])
    await engine.start()
    try:
        await engine.ingest(_scenario(EventFactory()))
        await engine.drain()
        assert await engine.forget(KID)
        assert await engine.forget(KID) == {}
        assert KID not in str(engine.cases.active[("test-community", OTHER)].reasons)
    finally:
        await engine.stop()
    con = await asyncpg.connect(pg_url)
    try:
        hits = []
        tables = [r[0] for r in await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "detector_memory" in tables
        for table in tables:
            for row in await con.fetch(f"SELECT * FROM {table}"):
                if any(KID in str(v) for v in row.values()):
                    hits.append((table, dict(row)))
        assert hits == []
        assert await con.fetchval("SELECT COUNT(*) FROM cases WHERE suspect = $1", OTHER) == 1
    finally:
        await con.close()


async def test_detector_memory_survives_a_restart_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """Issue 12: view_spike's firing mark and fan_out's ranking are committed with the batch and restored."""
    from groomguard.detectors.view_spike import ViewSpikeDetector, ViewSpikeSettings

    f = EventFactory()
    kids = [f"kid{i}" for i in range(6)]
    events: list[BaseEvent] = [f.adult("watcher"), *(f.minor(k) for k in kids)]
    for h in range(24):  # a quiet baseline, then a burst hour
        events.append(f.view("watcher", kids[h % 6], at=f.tick(hours=1)))
    burst = f.tick(hours=1).replace(minute=0)
    events += [f.view("watcher", kids[i % 5], at=burst.replace(minute=i // 60, second=i % 60)) for i in range(40)]
    settings = pg_settings(pg_url, tmp_path)

    def engine() -> Engine:
        return build_engine(settings, [MemorySink()], detectors=[ViewSpikeDetector(ViewSpikeSettings())])

    first = engine()
    await first.start()
    try:
        for event in events[:-10]:
            await first.ingest([event])
        fired = first.stats.findings
    finally:
        await first.stop()
    assert fired == 1
    second = engine()
    await second.start()
    try:
        for event in events[-10:]:
            await second.ingest([event])
        assert second.stats.findings == 0, "the restarted detector fired again in the same hour"
    finally:
        await second.stop()
    con = await asyncpg.connect(pg_url)
    try:
        rows = await con.fetch("SELECT detector, key, accounts FROM detector_memory WHERE detector = 'view_spike'")
        assert [tuple(r) for r in rows] == [("view_spike", "watcher", '["watcher"]')]
    finally:
        await con.close()


async def test_layout_and_addressing_state_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """Issue 13 on the real server: standings survive a restart, hubs are counted by degree, group
    messages resolve replies and turns, and forget and retention remove what addressing remembers."""
    from groomguard.actions import ModAlert
    from groomguard.addressing import addressees

    from tests.test_layout import ADULT, MOD, hub_layout

    ev = EventFactory()
    settings = pg_settings(pg_url, tmp_path)
    setup = hub_layout(ev, declare="moderator")
    dms = [e for e in setup if getattr(e, "kind", None) is not None and e.kind.value == "dm"]  # type: ignore[attr-defined]
    said = ev.message("@kid0:hs", "anyone on?")
    reply = ev.message(ADULT, "me", reply_to=said.message_id)
    # Retention runs on the wall clock (issue 12): the engines' "now" follows the scenario instead.
    now = [reply.at + timedelta(hours=1)]
    engine = build_engine(settings, [MemorySink()], clock=lambda: now[0])
    await engine.start()
    try:
        await engine.ingest([e for e in setup if e not in dms] + [said, reply])
        assert await engine.state.accepted_degree("test-community", MOD) == 9
    finally:
        await engine.stop()
    engine = build_engine(settings, [sink := MemorySink()], clock=lambda: now[0])
    await engine.start()
    try:
        assert (await engine.state.account("test-community", MOD)).standings == frozenset({"moderator"})
        assert await engine.state.message_author("test-community", said.message_id) == "@kid0:hs"
        assert [(a.account, a.how) for a in await addressees(reply, engine.state)] == [("@kid0:hs", "reply")]
        await engine.ingest(dms)
        await engine.drain()
        assert {a.suspect for a in sink.of(ModAlert)} == {ADULT}
        removed = await engine.forget("@kid0:hs")
        assert removed["message_turns"] == 1
        assert (await engine.forget(MOD))["standings"] == 1
        later = ev.message("@kid1:hs", "later", at=ev.tick(days=340))
        now[0] = reply.at + timedelta(days=366)  # tests keep 365 days of messages
        await engine.ingest([later])
        await engine.purge()  # the adult's reply is past retention now (the engine may have purged already)
        assert await engine.state.message_author("test-community", reply.message_id) is None
        assert await engine.state.message_author("test-community", later.message_id) == "@kid1:hs"
    finally:
        await engine.stop()
