"""The SQLite store against real files: migrations, idempotent appends, restart without loss or doubles, erasure."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from groomguard.app.runtime import build_engine
from groomguard.events import AgeBand, dump_event
from groomguard.store.sqlite import SqliteStore, migrations
from groomguard.testing import EventFactory, MemorySink, failing_commits, make_settings, running_engine
from groomguard.testing.simulate import CommunitySpec, generate


async def test_migrations_apply_once_and_enable_wal(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    await store.close()
    store = SqliteStore(db)
    await store.open()
    await store.close()
    con = sqlite3.connect(db)
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version")]
    assert versions == [v for v, _ in migrations()]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "events",
        "accounts",
        "contacts",
        "requests",
        "views",
        "conversations",
        "findings",
        "cases",
        "actions",
        "audit",
    } <= tables


async def test_append_is_idempotent_on_event_id(db: Path, ev: EventFactory) -> None:
    store = SqliteStore(db)
    await store.open()
    a, b = ev.message("x", "one"), ev.message("x", "two")
    first = await store.append_events([a, b, a])
    again = await store.append_events([b, a])
    assert [e.key for _, e in first] == [a.key, b.key]
    assert again == []
    assert (await store.counts())["events"] == 2
    assert [e for _, e in await store.events_after(0, 10)] == [a, b]
    await store.close()


def _outcome(db: Path) -> dict[str, object]:
    con = sqlite3.connect(db)
    return {
        "events": con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM events").fetchone(),
        "cases": con.execute("SELECT suspect, status, round(risk, 6), alert_version FROM cases ORDER BY id").fetchall(),
        "findings": con.execute("SELECT COUNT(*) FROM findings").fetchone()[0],
        "actions": sorted(r[0] for r in con.execute("SELECT id FROM actions")),
        "contacts": con.execute("SELECT COUNT(*) FROM contacts").fetchone()[0],
        "watermark": con.execute("SELECT value FROM meta WHERE name='watermark'").fetchone()[0],
    }


async def test_restart_mid_replay_loses_and_doubles_nothing(tmp_path: Path) -> None:
    events, truth = generate(CommunitySpec(seed=11))
    assert truth.groomers
    reference_db, crashed_db = tmp_path / "ref.db", tmp_path / "crash.db"

    async with running_engine(reference_db) as (engine, _):
        await engine.ingest(events)
    reference = _outcome(reference_db)
    assert reference["cases"], "the planted groomers should open cases"

    # Run 1 processes 40 %, then 10 % more is stored but not processed, then the process "dies".
    cut, stored_only = int(len(events) * 0.4), int(len(events) * 0.5)
    engine = build_engine(make_settings(crashed_db), [MemorySink()])
    await engine.start()
    await engine.ingest(events[:cut])
    await engine.store.append_events(events[cut:stored_only])
    await engine.store.close()  # no drain, no graceful stop

    # Run 2 resumes from the watermark, then the producer re-sends everything (at-least-once delivery).
    sink = MemorySink()
    async with running_engine(crashed_db, sink) as (engine2, _):
        assert engine2.stats.processed == stored_only - cut
        await engine2.ingest(events)
        assert engine2.stats.duplicates == stored_only
    assert _outcome(crashed_db) == reference


async def test_failed_commit_rolls_back_and_resumes(tmp_path: Path, ev: EventFactory) -> None:
    db = tmp_path / "x.db"
    events = [ev.adult("g"), *(ev.minor(f"k{i}") for i in range(6)), *(ev.contact("g", f"k{i}") for i in range(6))]
    engine = build_engine(make_settings(db), [MemorySink()])
    await engine.start()
    with (
        failing_commits(engine.store, sqlite3.OperationalError("disk I/O error")),
        contextlib.suppress(sqlite3.OperationalError),
    ):
        await engine.ingest(events)
    await engine.store.close()
    async with running_engine(db) as (again, _sink):
        assert again.stats.processed == len(events)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 1


async def test_forget_erases_every_trace(db: Path, ev: EventFactory) -> None:
    events = [ev.adult("suspect"), ev.region("suspect", "north")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}"), ev.answer("suspect", f"kid{i}", "rejected")]
    events += [
        ev.message("suspect", "hello there", conversation="dm1", private=True, recipients=("kid0",)),
        ev.view("suspect", "kid1"),
    ]
    async with running_engine(db) as (engine, sink):
        await engine.ingest(events)
        await engine.drain()
        assert any(getattr(a, "suspect", None) == "suspect" for a in sink.actions)
        removed = await engine.forget("suspect")
        assert removed["events"] == len(events) - 12  # only the kids' own age events stay
        assert removed["cases"] == 1
        assert (await engine.state.account("test-community", "suspect")).band is AgeBand.UNKNOWN
    con = sqlite3.connect(db)
    hits = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in con.execute(f"SELECT * FROM {table}"):
            if any(isinstance(v, str) and "suspect" in v for v in row):
                hits.append((table, row))
    # The audit log keeps that an erasure happened, never whose.
    assert hits == []
    assert con.execute("SELECT COUNT(*) FROM audit WHERE action = 'forget'").fetchone()[0] == 1


async def test_retention_purges_old_text_but_not_unprocessed_events(db: Path, ev: EventFactory) -> None:
    old = ev.message("a", "old words", conversation="dm", private=True, recipients=("b",))
    ev.tick(days=40)
    new = ev.message("a", "new words", conversation="dm", private=True, recipients=("b",))
    # Retention runs on the wall clock, pinned here to the newer message's time.
    retention = {"store__message_retention_days": 30, "store__event_retention_days": 90}
    async with running_engine(db, clock=lambda: new.at, **retention) as (engine, _):
        await engine.ingest([old, new])
        removed = await engine.purge()
    assert removed["messages"] == 1
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT text FROM messages")] == ["new words"]


def test_demo_data_is_valid_jsonl() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "community.jsonl"
    events, _ = generate()
    lines = path.read_text().splitlines()
    assert lines == [dump_event(e) for e in events], (
        "examples/community.jsonl is stale: run python examples/generate.py"
    )


async def test_forget_a_child_scrubs_them_from_other_accounts_cases(db: Path, ev: EventFactory) -> None:
    events = [ev.adult("suspect")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}")]
    async with running_engine(db) as (engine, _sink):
        await engine.ingest(events)
        await engine.drain()
        await engine.forget("kid5")
        card = engine.cases.render(engine.cases.active[("test-community", "suspect")], ev.tick())
    assert "kid5" not in card.model_dump_json()
    con = sqlite3.connect(db)
    leftovers = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in con.execute(f"SELECT * FROM {table}"):
            if any((isinstance(v, str) and '"kid5"' in v) or v == "kid5" for v in row):
                leftovers.append(table)
    assert leftovers == []
    # The suspect's case survives the child's erasure.
    assert con.execute("SELECT COUNT(*) FROM cases WHERE suspect = 'suspect'").fetchone()[0] == 1


async def test_only_text_worth_keeping_is_stored(db: Path, ev: EventFactory) -> None:
    from groomguard.events import MessageEdited

    public = ev.message("adult", "public chatter")
    to_minor = ev.message("adult", "hi there", recipients=("kid",))
    private = ev.message("adult", "a dm", conversation="dm", private=True, recipients=("friend",))
    edit_public = MessageEdited(
        event_id="edit1",
        platform=ev.platform,
        community=ev.community,
        at=ev.tick(),
        message_id=public.message_id,
        author="adult",
        conversation="general",
        text="edited chatter",
    )
    edit_kept = MessageEdited(
        event_id="edit2",
        platform=ev.platform,
        community=ev.community,
        at=ev.tick(),
        message_id=to_minor.message_id,
        author="adult",
        conversation="general",
        text="hi there (edited)",
    )
    async with running_engine(db) as (engine, _):
        await engine.ingest([ev.minor("kid"), public, to_minor, private, edit_public, edit_kept])
    con = sqlite3.connect(db)
    assert sorted(r[0] for r in con.execute("SELECT text FROM messages")) == ["a dm", "hi there (edited)"]
