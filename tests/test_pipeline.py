"""Commits behind processing (SqliteStore.submit_batch): the same findings, cases and outbox as committing each batch."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Events queued while the idle worker waits on a commit that then fails: drain raises, nothing hangs,
    and the queued events it drops are counted and logged."""
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
        dropped = engine.stats.dropped
        assert 0 < dropped <= 40, dropped
        assert f"{dropped} queued events dropped" in caplog.text
    finally:
        monkeypatch.setattr(sqlite_store, "_write_statements", real)
        await engine.stop()


async def test_batches_handed_to_the_writer_count_once_towards_a_settle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine waits for the writer once SETTLE_EVERY_BATCHES batches are unsettled (held or in flight);
    batches handed over in the same batch's turn used to count twice, and so half as many forced a wait."""
    size = 10
    events, _ = generate(CommunitySpec(seed=3))
    settings = make_settings(tmp_path / "x.db", engine__batch_size=size)
    engine = build_engine(settings, [])
    await engine.start()
    assert engine.store.pipelined
    loop = asyncio.get_running_loop()
    gates: list[asyncio.Future[None]] = []
    submit = engine.store.submit_batch

    def gated(write: Any) -> asyncio.Future[None]:
        # Durable only when the test says so (and once really written): the writer looks slow.
        submit(write)
        gate = loop.create_future()
        gates.append(gate)
        return gate

    waits: list[int] = []

    async def settle() -> None:
        waits.append(engine._held.events + sum(count for _, _, count in engine._inflight))

    monkeypatch.setattr(engine.store, "submit_batch", gated)
    monkeypatch.setattr(engine, "_settle", settle)
    try:
        async with engine._lock:
            await engine._handle(events[:size])  # handed over at once: nothing was in flight
            for i in range(1, SETTLE_EVERY_BATCHES // 2 + 1):
                await engine._handle(events[i * size : (i + 1) * size])  # held behind the first
            gates[0].set_result(None)
            # The first is durable: this batch hands the held ones over, half the limit in all.
            n = SETTLE_EVERY_BATCHES // 2 + 1
            await engine._handle(events[n * size : (n + 1) * size])
            assert len(gates) == 2 and waits == [], waits
            for i in range(n + 1, SETTLE_EVERY_BATCHES + 1):  # held behind those, up to the limit
                await engine._handle(events[i * size : (i + 1) * size])
            assert waits == [SETTLE_EVERY_BATCHES * size], "and at the limit the engine waits"
    finally:
        monkeypatch.undo()
        for gate in gates:
            if not gate.done():
                gate.set_result(None)
        await engine.store.settle()
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


@pytest.mark.parametrize("child", [True, False], ids=["writer-process", "writer-thread"])
async def test_checkpoints_while_processing_change_no_finding_case_or_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: bool
) -> None:
    """A WAL checkpoint after every settle, run while the engine processes on (batches held, reads released),
    ends in exactly what a run without checkpoints ends in."""
    events, _truth = generate(CommunitySpec(seed=5, adults=80, minors=50, days=10))

    async def run(db: Path) -> list[str]:
        settings = make_settings(db, engine__batch_size=40, engine__batch_wait_ms=0, store__writer_process=child)
        sink = MemorySink()
        engine = build_engine(settings, [sink])
        await engine.start()
        try:
            await engine.submit_many(events)
            await engine.drain()
        finally:
            await engine.stop()
        return sorted(a.action_id for a in sink.actions)

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 1 << 40)
    without = await run(tmp_path / "without.db")
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 0)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SENT_BYTES", 0)
    started: list[bool] = []
    during: list[bool] = []
    start, process = SqliteStore.start_checkpoint, Engine._process

    def counting(self: SqliteStore) -> Any:
        future = start(self)
        started.append(future is not None)
        return future

    async def watching(self: Engine, items: Any) -> None:
        during.append(self._checkpoint is not None and not self._checkpoint.done())
        await process(self, items)

    monkeypatch.setattr(SqliteStore, "start_checkpoint", counting)
    monkeypatch.setattr(Engine, "_process", watching)
    with_checkpoints = await run(tmp_path / "with.db")
    assert sum(started) >= 5, started
    if child:
        assert any(during), "batches were processed while a checkpoint ran"
    reference = _outcome(tmp_path / "without.db")
    assert reference["findings"] and reference["cases"]
    assert _outcome(tmp_path / "with.db") == reference
    assert with_checkpoints == without


async def test_events_appended_while_reads_are_released_and_held_wait_for_the_next_batch(tmp_path: Path) -> None:
    """`release_reads(hold=True)`: appends are held and known (no double store), nothing is written until a
    batch hands them over, and pinning again keeps them known."""
    db = tmp_path / "x.db"
    events, _ = generate(CommunitySpec(seed=3))
    async with _store(db) as store:
        store.pin_reads()
        await store.append_events(events[:5])
        await store.settle()
        store.release_reads(hold=True)
        assert [seq for seq, _ in await store.append_events(events[5:10])] == list(range(6, 11))
        assert _rows(db) == 5, "held, not written"
        assert await store.append_events(events[5:10]) == [], "held events are known"
        store.pin_reads()
        assert await store.append_events(events[:10]) == [], "still known once reads are pinned again"
        await store.settle()
        assert _rows(db) == 10
        store.release_reads()


async def test_a_checkpoint_in_the_writer_process_folds_the_wal_into_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "x.db"
    events, _ = generate(CommunitySpec(seed=3))
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 0)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SENT_BYTES", 0)
    async with _store(db) as store:
        assert store._child is not None
        store.pin_reads()
        await store.append_events(events[:50])
        await store.settle()
        store.release_reads(hold=True)
        in_file = _rows(db, wal=False)
        checkpoint = store.start_checkpoint()
        assert checkpoint is not None
        await checkpoint
        assert in_file < 50 and _rows(db, wal=False) == 50, "the database file itself now holds every row"
        store.pin_reads()
        store.release_reads()


async def test_a_checkpoint_is_done_in_the_loop_turn_that_handles_its_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine holds its batches until it sees the checkpoint done between two batches, without yielding
    to the loop: a future done only a turn after the reply (a task around the child's) held them 3-4 times
    as long as the checkpoint ran."""
    events, _ = generate(CommunitySpec(seed=3))
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 0)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SENT_BYTES", 0)
    seen: list[bool] = []
    resolve = sqlite_store._ChildWriter._resolve

    def watching(self: Any, future: asyncio.Future[None], error: BaseException | None) -> None:
        resolve(self, future, error)
        if checkpoint is not None:
            seen.append(checkpoint.done())

    checkpoint: asyncio.Future[None] | None = None
    monkeypatch.setattr(sqlite_store._ChildWriter, "_resolve", watching)
    async with _store(tmp_path / "x.db") as store:
        store.pin_reads()
        await store.append_events(events[:50])
        await store.settle()
        store.release_reads(hold=True)
        checkpoint = store.start_checkpoint()
        assert checkpoint is not None
        await checkpoint
        assert seen == [True]
        store.pin_reads()
        store.release_reads()


async def test_a_checkpoint_that_fails_is_logged_and_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 0)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SENT_BYTES", 0)
    async with _store(tmp_path / "x.db") as store:
        assert store._child is not None
        store._child._process.kill()
        store._child._process.wait()
        checkpoint = store.start_checkpoint()
        assert checkpoint is not None
        await checkpoint  # no exception: the next write says what is wrong
        assert "WAL checkpoint failed" in caplog.text


@contextlib.asynccontextmanager
async def _store(db: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _rows(db: Path, wal: bool = True) -> int:
    """Stored events, read through the WAL or (`wal=False`) from the database file alone."""
    uri = f"file:{db}?mode=ro" if wal else f"file:{db}?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchall():
            return 0  # even the schema is still only in the WAL
        return int(con.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        con.close()


async def test_nothing_is_handed_to_the_writer_while_a_checkpoint_runs(tmp_path: Path) -> None:
    """While a checkpoint runs, reads are released, so a batch committing then would be read twice (from the
    store and from the overlay): batches are held until it ends, then handed over."""
    db = tmp_path / "x.db"
    events, _ = generate(CommunitySpec(seed=3))
    engine = build_engine(make_settings(db, engine__batch_size=20, engine__batch_wait_ms=0), [])
    await engine.start()
    try:
        await engine.ingest(events[:20])
        assert engine._pipe is not None
        before = _rows(db)
        async with engine._lock:  # a settle that started a checkpoint which has not ended
            engine._pipe.release_reads(hold=True)
            engine.state.settle()
            engine._checkpoint = asyncio.get_running_loop().create_future()
        await engine.submit_many(events[20:80])
        await asyncio.wait_for(engine._queue.join(), 30)
        assert not engine._inflight and engine._held.events == 60, "held, none handed over"
        assert _rows(db) == before
        engine._checkpoint.set_result(None)
        await engine.submit_many(events[80:100])
        await asyncio.wait_for(engine.drain(), 30)
        assert engine._checkpoint is None and engine._pipe._pinned
        assert _rows(db) == before + 80
    finally:
        if engine._checkpoint is not None and not engine._checkpoint.done():
            engine._checkpoint.set_result(None)  # a failed assertion above must not leave stop() waiting on it
        await engine.stop()
