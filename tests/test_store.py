"""What only the SQLite store has (the contract both backends share is tests/test_store_contract.py)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from groomguard.events import dump_event
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import EventFactory, running_engine
from groomguard.testing.simulate import generate


async def test_the_file_is_in_wal_mode_with_numbered_sequences_that_never_go_back(db: Path, ev: EventFactory) -> None:
    store = SqliteStore(db)
    await store.open()
    try:
        first = await store.append_events([ev.message("x", "one"), ev.message("x", "two")])
        assert [seq for seq, _ in first] == [1, 2]
        async with store.db.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
        await store.db.execute("DELETE FROM events")  # as retention does once events are processed
        await store.db.execute("INSERT INTO meta VALUES ('watermark', '2')")
    finally:
        await store.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    store = SqliteStore(db)
    await store.open()
    try:
        # The one writer numbers events past both the newest stored event and the watermark.
        assert [seq for seq, _ in await store.append_events([ev.message("x", "three")])] == [3]
    finally:
        await store.close()


def test_demo_data_is_valid_jsonl() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "community.jsonl"
    events, _ = generate()
    lines = path.read_text().splitlines()
    assert lines == [dump_event(e) for e in events], (
        "examples/community.jsonl is stale: run python examples/generate.py"
    )


async def test_a_year_one_clock_stored_by_an_older_version_does_not_stop_a_start(tmp_path: Path) -> None:
    """Event times are bounded below now; a database from before may hold a clock of year 1, and the
    snapshot's day of notice history before the slowest clock must not overflow on it."""
    db = tmp_path / "gg.db"
    ev = EventFactory(community="odd")
    async with running_engine(db) as (engine, _sink):
        await engine.ingest([ev.adult("a"), ev.minor("k")])
    with sqlite3.connect(db) as con:
        changed = con.execute(
            "UPDATE detector_memory SET value = ? WHERE detector = 'engine.clock' AND community = 'odd'",
            (json.dumps("0001-01-01T00:00:00+00:00"),),
        ).rowcount
    assert changed == 1
    async with running_engine(db) as (engine, _sink):
        assert (await engine.community_clocks())["odd"] == datetime.min.replace(tzinfo=UTC)
        assert await engine.ingest([ev.message("a", "hello", private=True, recipients=("k",))]) == 1


async def test_a_stored_body_this_version_refuses_is_skipped_at_recovery(tmp_path: Path, ev: EventFactory) -> None:
    """Stored by an older version, not yet processed (a crash), and refused now (a time before 1970): the
    start's recovery logs and skips that one event and processes the rest, even a whole fetch of them."""
    db = tmp_path / "gg.db"
    events = [ev.adult("a"), ev.minor("k"), ev.message("a", "hi", private=True, recipients=("k",))]
    store = SqliteStore(db)
    await store.open()
    try:
        await store.append_events(events)
        await store.settle()
    finally:
        await store.close()
    with sqlite3.connect(db) as con:
        body = con.execute("SELECT body FROM events WHERE seq = 1").fetchone()[0]
        old = body.replace(json.loads(body)["at"], "0001-01-01T00:00:00+00:00")
        con.execute("UPDATE events SET body = ? WHERE seq = 1", (old,))
    async with running_engine(db, engine__batch_size=1) as (engine, _sink):
        assert engine.stats.processed == 2
        assert engine._watermark == 3
