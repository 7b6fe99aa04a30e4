"""What only the PostgreSQL store has: the processing lease, several engines on one database, the doctor.

The contract both backends share (outcomes equal to SQLite's, restarts, erasure, retention, memory) is
tests/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from groomguard.actions import ModAlert
from groomguard.app.runtime import build_engine
from groomguard.engine import Engine
from groomguard.events import BaseEvent
from groomguard.follower import LogFollower
from groomguard.store import open_store
from groomguard.store.postgres import PostgresStore, redact
from groomguard.store.postgres import migrations as pg_migrations
from groomguard.store.sqlite import migrations as sqlite_migrations
from groomguard.testing import MemorySink, make_settings, running_engine
from groomguard.testing.simulate import CommunitySpec, generate

from tests.test_store_contract import Backend, outcome


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


async def _wait_processed(url: str, seconds: float = 60) -> None:
    con = await asyncpg.connect(url)
    try:
        for _ in range(int(seconds / 0.05)):
            top = await con.fetchval("SELECT COALESCE(MAX(seq), 0) FROM events")
            mark = await con.fetchval("SELECT COALESCE(MAX(value::bigint), 0) FROM meta WHERE name = 'watermark'")
            pending = await con.fetchval("SELECT COUNT(*) FROM actions WHERE delivered_at IS NULL")
            if top and mark == top and pending == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"leader did not catch up: seq {top}, watermark {mark}, pending {pending}")
    finally:
        await con.close()


def _shards() -> tuple[list[BaseEvent], list[BaseEvent]]:
    """Two communities, as two Discord shards would see them (distinct platforms keep event keys apart)."""
    one = generate(CommunitySpec(community="shard-a", platform="shard-a", seed=11))[0]
    two = generate(CommunitySpec(community="shard-b", platform="shard-b", seed=12))[0]
    return one, two


def _by_community(outcome: dict[str, Any]) -> dict[str, Any]:
    """Outcome without case ids, which depend on how two communities interleave."""
    # The stored risk is decayed to the newest event time of the whole log at commit, which depends on how
    # the communities interleave; the reasons (each score and its time) that determine it must match.
    return {
        "cases": sorted(c[:3] + c[4:] for c in outcome["cases"]),
        "findings": sorted(outcome["findings"]),
        "views": outcome["views"],
        "contacts": outcome["contacts"],
        "events": outcome["events"],
    }


async def test_two_engines_on_one_database_never_double_alert(pg_url: str, tmp_path: Path) -> None:
    one, two = _shards()
    async with running_engine(tmp_path / "ref.db") as (engine, _):
        await engine.ingest(one)
        await engine.ingest(two)
    reference = await outcome(Backend("sqlite", tmp_path / "ref.db", None))
    settings = pg_settings(pg_url, tmp_path)
    sink_a, sink_b = MemorySink(), MemorySink()
    a, b = build_engine(settings, [sink_a]), build_engine(settings, [sink_b])
    await a.start()
    await b.start()
    followers = [LogFollower(a, interval_s=0.02), LogFollower(b, interval_s=0.02)]
    for f in followers:
        await f.start()
    try:
        assert [e.store.leader for e in (a, b)] == [True, False]  # type: ignore[attr-defined]

        async def feed(engine: Engine, events: list[BaseEvent]) -> None:
            for i, event in enumerate(events):
                await engine.submit(event)
                if i % 50 == 0:
                    await asyncio.sleep(0)

        # Each shard feeds its own community at the same time...
        await asyncio.gather(feed(a, one), feed(b, two))
        await a.drain()
        await b.drain()
        # ...then each re-sends half of the other's (at-least-once producers): all duplicates.
        await asyncio.gather(feed(a, two[: len(two) // 2]), feed(b, one[: len(one) // 2]))
        await a.drain()
        await b.drain()
        await _wait_processed(pg_url)
    finally:
        for f in followers:
            await f.stop()
        await a.stop()
        await b.stop()
    result = await outcome(Backend("postgres", tmp_path / "unused.db", pg_url))
    assert result["events"] == (len(one) + len(two), len(one) + len(two))
    assert sink_b.actions == [], "a follower must never deliver"
    first_cards = [x.case_id for x in sink_a.of(ModAlert) if x.version == 1]
    # A case opened only by a child notice (below the alert threshold) has no card: alert_version 0.
    carded = [c for c in result["cases"] if c[4] > 0]
    assert len(first_cards) == len(set(first_cards)) == len(carded), "one first alert per carded case"
    assert len({x.action_id for x in sink_a.actions}) == len(sink_a.actions)
    # The leader processed every event exactly once: the same state and cases as one engine on SQLite.
    assert _by_community(result) == _by_community(reference)


async def test_follower_keeps_storing_and_a_restart_takes_over(pg_url: str, tmp_path: Path) -> None:
    events = generate(CommunitySpec(seed=11))[0]
    half = len(events) // 2
    settings = pg_settings(pg_url, tmp_path)
    leader, follower = build_engine(settings, [MemorySink()]), build_engine(settings, [MemorySink()])
    await leader.start()
    await follower.start()
    watch = LogFollower(follower, interval_s=0.02, lease_check_s=0.05)
    await watch.start()
    try:
        await leader.ingest(events[:half])
        await leader.stop()  # the leader goes away; its lease goes with its connection
        await follower.ingest(events[half:])  # still stored, not processed
        await asyncio.wait_for(watch.takeover.wait(), 10)
    finally:
        await watch.stop()
        await follower.stop()
    con = await asyncpg.connect(pg_url)
    stored = await con.fetchval("SELECT COUNT(*) FROM events")
    mark = int(await con.fetchval("SELECT value FROM meta WHERE name = 'watermark'"))
    await con.close()
    assert stored == len(events) and mark < stored
    # Crash-only takeover: a new engine opens as leader and processes the backlog from the store.
    again = build_engine(settings, [MemorySink()])
    await again.start()
    try:
        assert again.store.leader  # type: ignore[attr-defined]
        assert again.stats.processed == len(events) - half
    finally:
        await again.stop()
    async with running_engine(tmp_path / "ref.db") as (engine, _):
        await engine.ingest(events)
    reference = await outcome(Backend("sqlite", tmp_path / "ref.db", None))
    result = await outcome(Backend("postgres", tmp_path / "unused.db", pg_url))
    assert result["cases"] == reference["cases"] and result["actions"] == reference["actions"]


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
