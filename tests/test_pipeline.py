"""Commits behind processing (SqliteStore.submit_batch): the same findings, cases and outbox as committing each batch."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import groomguard.engine as engine_module
import groomguard.store.sqlite as sqlite_store
import pytest
from groomguard.app.runtime import build_engine
from groomguard.engine import OVERLAY_BATCHES, SETTLE_EVERY_BATCHES, Engine, EngineError
from groomguard.events import dump_event
from groomguard.store import writer
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import MemorySink, make_settings
from groomguard.testing.simulate import CommunitySpec, generate


def _outcome(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(db)
    try:
        return {
            "findings": con.execute(
                "SELECT detector, suspect, score, child, at, event_key FROM findings ORDER BY id"
            ).fetchall(),
            "cases": con.execute(
                "SELECT id, suspect, status, round(risk, 9), alert_version, children FROM cases ORDER BY id"
            ).fetchall(),
            "actions": con.execute("SELECT id, kind, payload FROM actions ORDER BY id").fetchall(),
            "memory": con.execute(
                "SELECT detector, community, key, value FROM detector_memory ORDER BY 1, 2, 3"
            ).fetchall(),
            "watermark": con.execute("SELECT value FROM meta WHERE name = 'watermark'").fetchone(),
        }
    finally:
        con.close()


async def _replay(db: Path, events: list[Any], pipelined: bool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(SqliteStore, "pipelined", property(lambda self: pipelined))
    # Small batches: many of them commit behind processing before each settle.
    settings = make_settings(db, engine__batch_size=40, engine__batch_wait_ms=0)
    sink = MemorySink()
    engine = build_engine(settings, [sink])
    await engine.start()
    assert (engine._pipe is not None) is pipelined
    for event in events:
        await engine.submit(event)
    await engine.drain()
    await engine.stop()
    return sorted(a.action_id for a in sink.actions)


async def test_commits_behind_processing_change_no_finding_case_or_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, _truth = generate(CommunitySpec(seed=5, adults=80, minors=50, days=10))
    assert len(events) > 40 * SETTLE_EVERY_BATCHES * 3, "enough batches for several settle cycles"
    classic = await _replay(tmp_path / "classic.db", events, False, monkeypatch)
    piped = await _replay(tmp_path / "piped.db", events, True, monkeypatch)
    reference = _outcome(tmp_path / "classic.db")
    assert reference["findings"] and reference["cases"], "the planted groomers should be found"
    assert _outcome(tmp_path / "piped.db") == reference
    assert piped == classic, "the same actions reach the sinks"


@pytest.mark.parametrize("child", [True, False], ids=["writer-process", "writer-thread"])
async def test_a_failed_commit_behind_processing_stops_later_ones(tmp_path: Path, child: bool) -> None:
    """Once one queued transaction fails, later ones refuse: no watermark may pass a batch not written."""
    db = tmp_path / "x.db"
    store = SqliteStore(db, writer_process=child)
    await store.open()
    assert store.pipelined
    store.pin_reads()
    events, _ = generate(CommunitySpec(seed=3))
    first = await store.append_events(events[:10])
    assert [seq for seq, _ in first] == list(range(1, 11))
    await store.settle()  # appended rows are written with the next batch, or here
    broken = store._submit(writer.write_statements, [("INSERT INTO no_such_table VALUES (?)", [(1,)])])
    later = await store.append_events(events[10:20])
    assert later, "numbered at once, written behind"
    assert store._event_rows, "held for the transaction after the failed one"
    with pytest.raises(sqlite3.OperationalError):
        await store.settle()
    assert broken.done() and broken.exception() is not None
    store.release_reads()
    await store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 10, "the write after the failure refused"
    con.close()


async def test_a_commit_failing_while_events_wait_stops_the_engine_without_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events queued while the idle worker waits on a commit that then fails: drain raises, nothing hangs."""
    events, _ = generate(CommunitySpec(seed=3))
    # The writer thread: the fault is planted in this process's writing function.
    settings = make_settings(
        tmp_path / "x.db", engine__batch_size=40, engine__batch_wait_ms=0, store__writer_process=False
    )
    engine = build_engine(settings, [])
    await engine.start()
    real = sqlite_store._write_statements

    def full_disk(con: sqlite3.Connection, statements: list[tuple[str, Any]]) -> None:
        # A slow, then refused batch commit (the disk filled up); event rows still go in.
        time.sleep(0.3)
        if all(sql.startswith("INSERT INTO events") for sql, _ in statements):
            real(con, statements)
            return
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite_store, "_write_statements", full_disk)
    try:
        await engine.submit_many(events[:40])
        await asyncio.sleep(0.05)  # processed; the queue is empty, so the worker waits on the commit
        await engine.submit_many(events[40:80])  # accepted: the failure is not known yet
        with pytest.raises(EngineError, match="disk is full"):
            await asyncio.wait_for(engine.drain(), 10)
        with pytest.raises(EngineError):
            await engine.submit(events[80])
        assert engine.queue_depth == 0, "what was queued is dropped (it was never acknowledged)"
    finally:
        monkeypatch.setattr(sqlite_store, "_write_statements", real)
        await engine.stop()


async def test_events_appended_but_not_yet_written_are_known_to_ingest(tmp_path: Path) -> None:
    """A webhook resend is compared with the stored body even while its first copy waits for its batch."""
    store = SqliteStore(tmp_path / "x.db")
    await store.open()
    store.pin_reads()
    events, _ = generate(CommunitySpec(seed=3))
    await store.append_events(events[:5])
    assert store._event_rows, "held for the next batch's transaction"
    bodies = await store.known_bodies([e.key for e in events[:6]])
    assert set(bodies) == {e.key for e in events[:5]}
    assert bodies[events[0].key] == dump_event(events[0])
    await store.settle()
    store.release_reads()
    assert set(await store.known_bodies([e.key for e in events[:6]])) == {e.key for e in events[:5]}
    await store.close()


async def test_the_read_view_moves_on_a_long_busy_stream_even_when_the_writer_keeps_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay of uncommitted rows is bounded by OVERLAY_BATCHES, not only by the writer falling behind."""
    events, _truth = generate(CommunitySpec(seed=5, adults=80, minors=50, days=10))
    size = 10
    assert len(events) > size * OVERLAY_BATCHES * 3
    engine = build_engine(make_settings(tmp_path / "x.db", engine__batch_size=size, engine__batch_wait_ms=0), [])
    grown: list[int] = []
    settle = Engine._settle

    async def recording(self: Engine) -> None:
        grown.append(self._since_settle)
        await settle(self)

    monkeypatch.setattr(Engine, "_settle", recording)
    # As if the writer always kept up: it never falls SETTLE_EVERY_BATCHES behind.
    monkeypatch.setattr(engine_module, "SETTLE_EVERY_BATCHES", 10**6)
    await engine.start()
    try:
        await engine.submit_many(events)  # all queued at once: the worker never finds the queue empty
        await engine.drain()
    finally:
        await engine.stop()
    assert len(grown) >= 3, grown
    assert max(grown) <= OVERLAY_BATCHES * size, grown
