"""Partitioned processing on a real PostgreSQL: engines split the partitions, leases expire and renew,
a restart resumes from each partition's watermark, and a kill -9 is taken over in-process in time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from groomguard.app.runtime import build_engine
from groomguard.engine import Engine, EngineError
from groomguard.events import BaseEvent, ContactAnswered, parse_event
from groomguard.follower import LogFollower
from groomguard.store.partitions import CaseIds, fair_share, partition_of, partition_sql, stored_text
from groomguard.store.postgres import PostgresStore, PostgresStoreError
from groomguard.testing import MemorySink, make_settings
from partition_kit import handoffs as kit_handoffs
from partition_kit import outcome, progress, stream, wait_settled
from partition_kit import posted as kit_posted

KIT = Path(__file__).with_name("partition_kit.py")
_names = itertools.count(1)


def settings_for(url: str, tmp_path: Path, lease: float = 8.0, partitions: int = 16) -> Any:
    settings = make_settings(tmp_path / "unused.db")
    settings.store.database_url = url
    settings.store.partitions = partitions
    settings.store.partition_lease_seconds = lease
    return settings


@pytest.fixture
async def ref_url(pg_server: Any) -> AsyncIterator[str]:
    """A second empty database, for the single-engine reference run."""
    name = f"gg_ref_{next(_names)}"
    admin = await asyncpg.connect(pg_server.url())
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    yield pg_server.url(name)
    admin = await asyncpg.connect(pg_server.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture(scope="module")
def events() -> list[BaseEvent]:
    return stream()


async def reference(url: str, tmp_path: Path, events: list[BaseEvent]) -> dict[str, Any]:
    """One engine alone (it holds every partition) processing the whole stream: what a split run must equal."""
    engine = build_engine(settings_for(url, tmp_path), [MemorySink()])
    await engine.start()
    try:
        assert len(engine.store.partitions.held) == 16  # type: ignore[attr-defined]
        for start in range(0, len(events), 500):
            await engine.ingest(events[start : start + 500])
        await engine.drain()
    finally:
        await engine.stop()
    result = await outcome(url)
    assert result["cases"] and result["actions"], "the stream must open cases and alert"
    return result


async def logged(url: str) -> list[BaseEvent]:
    """The stored events in seq order (the order every engine processes them in)."""
    con = await asyncpg.connect(url)
    try:
        return [parse_event(r[0]) for r in await con.fetch("SELECT body FROM events ORDER BY seq")]
    finally:
        await con.close()


async def crash(engine: Engine) -> None:
    """What kill -9 leaves: no batch finishes, no lease is handed back, the connections just drop."""
    for task in engine._tasks:
        task.cancel()
    store = engine.store
    assert isinstance(store, PostgresStore)
    await store.partitions.abandon()
    store.db.terminate()
    store._db = None
    if store._marks_db is not None:
        store._marks_db.terminate()
        store._marks_db = None


async def wait_for(check: Any, seconds: float, what: str) -> float:
    """Poll the async `check` until true; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _start_followed(*engines: Engine) -> list[LogFollower]:
    """Start the engines in order, then a fast-polling follower for each (joins and hand-overs in tenths of a second)."""
    for engine in engines:
        await engine.start()
    followers = [LogFollower(e, interval_s=0.02, rebalance_s=0.1) for e in engines]
    for follower in followers:
        await follower.start()
    return followers


def held(engine: Engine) -> set[int]:
    return set(engine.store.partitions.held)  # type: ignore[attr-defined]


async def test_partition_hash_is_the_same_in_python_and_sql(pg_url: str) -> None:
    names = ["club-1", "c", "", "Ωmega-社区", "a\x00b", "x" * 300, "!gg room:matrix.org"]
    con = await asyncpg.connect(pg_url)
    try:
        for count in (1, 7, 16, 1024):
            sql = partition_sql("$1::text", count)
            got = [await con.fetchval(f"SELECT {sql}", stored_text(n)) for n in names]
            assert got == [partition_of(n, count) for n in names]
    finally:
        await con.close()
    assert len({partition_of(f"club-{i}", 16) for i in range(200)}) == 16
    assert [fair_share(16, n) for n in (0, 1, 2, 3, 16, 20)] == [16, 16, 8, 6, 1, 1]


def test_case_ids_never_collide_across_partitions() -> None:
    fresh = CaseIds(16, {})
    opened = [(c, fresh(c)) for c in (f"club-{i % 40}" for i in range(400))]
    ids = [case_id for _, case_id in opened]
    assert len(set(ids)) == len(ids)
    assert all((case_id - 1) % 16 == partition_of(c, 16) for c, case_id in opened)
    # A takeover continues after the partition's highest committed id (38 = 2 * 16 + 5 + 1).
    community = next(f"club-{i}" for i in itertools.count() if partition_of(f"club-{i}", 16) == 5)
    later = CaseIds(16, {5: 38})
    assert [later(community), later(community)] == [54, 70]


async def test_two_engines_split_the_partitions_and_match_one_engine(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent]
) -> None:
    settings = settings_for(pg_url, tmp_path, lease=2.0)
    sink_a, sink_b = MemorySink(), MemorySink()
    a, b = build_engine(settings, [sink_a]), build_engine(settings, [sink_b])
    followers = await _start_followed(a, b)
    try:
        assert len(held(a)) == 16 and held(b) == set()  # the first holds all until the second joins...

        async def split() -> bool:
            return len(held(a)) == len(held(b)) == 8

        await wait_for(split, 10, "a fair split")  # ...then each takes its share, in-process
        assert held(a) | held(b) == set(range(16))

        async def feed(engine: Engine, mine: set[str], answers: set[str]) -> None:
            chosen = (
                e
                for e in events
                if (e.community in mine and not isinstance(e, ContactAnswered))
                or (e.community in answers and isinstance(e, ContactAnswered))
            )
            for i, event in enumerate(chosen):
                await engine.submit(event)
                if i % 100 == 0:
                    await asyncio.sleep(0)

        # Both store at once, each some communities of its own partitions and some of the other's (which
        # the other processes from the shared log), and each the contact answers of the other's communities:
        # two producers per community, so answers are stored before their requests (groomguard.ordering).
        names = sorted({e.community for e in events})
        first, second = set(names[0::2]), set(names[1::2])
        await asyncio.gather(feed(a, first, second), feed(b, second, first))
        await a.drain()
        await b.drain()
        state = await wait_settled(pg_url, len(events))
    finally:
        for f in followers:
            await f.stop()
        await a.stop()
        await b.stop()
    assert a.stats.processed > 0 and b.stats.processed > 0, "both engines processed their share"
    assert a._answers is not None and b._answers is not None
    assert a._answers.held_total + b._answers.held_total > 0, "some answers were stored before their requests"
    assert a.stats.processed + b.stats.processed == len(events) == state["processed"], "each event exactly once"
    # The producers interleave, so the log's order is known only now: one engine processing that same
    # log must leave exactly what the two left.
    expected = await reference(ref_url, tmp_path, await logged(pg_url))
    assert await outcome(pg_url) == expected
    ids_a, ids_b = {x.action_id for x in sink_a.actions}, {x.action_id for x in sink_b.actions}
    assert ids_a and ids_b and not ids_a & ids_b, "each community's actions delivered by its own engine only"
    assert ids_a | ids_b == {row[0] for row in expected["actions"]}


async def test_lease_renews_expires_and_a_stale_engine_commits_nothing(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent]
) -> None:
    part = events
    expected = await reference(ref_url, tmp_path, part)
    settings = settings_for(pg_url, tmp_path, lease=2.0)
    a = build_engine(settings, [MemorySink()])
    await a.start()
    b: Engine | None = None
    follower: LogFollower | None = None
    try:
        await asyncio.sleep(3.0)  # longer than the lease: renewals keep it
        state = await progress(pg_url)
        assert state["owners"] == {a.store.partitions.owner} and len(held(a)) == 16  # type: ignore[attr-defined]
        # A stalls (no more renewals, as a process stopped in a debugger would), and B starts.
        await a.store.partitions.abandon(keep_connection=True)  # type: ignore[attr-defined]
        b = build_engine(settings, [MemorySink()])
        await b.start()
        assert held(b) == set(), "nothing free while A's leases run"
        follower = LogFollower(b, interval_s=0.02, rebalance_s=0.1)
        await follower.start()
        took = await wait_for(lambda: _async(len(held(b)) == 16), 6, "B takes over A's expired leases")
        assert took < 4.0
        # A still believes it holds everything: its batch is refused as a whole and it rebuilds its memory.
        assert len(held(a)) == 16
        await a.ingest(part)
        assert a.stats.processed == 0 and held(a) == set()
        assert not a.cases.active
        await wait_settled(pg_url, len(part))
    finally:
        if follower is not None:
            await follower.stop()
        if b is not None:
            await b.stop()
        await a.stop()
    assert b.stats.processed == len(part)
    assert await outcome(pg_url) == expected


async def _async(value: bool) -> bool:
    return value


async def test_restart_after_a_crash_resumes_from_each_partitions_watermark(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent]
) -> None:
    expected = await reference(ref_url, tmp_path, events)
    settings = settings_for(pg_url, tmp_path, lease=2.0)
    cut, stored_only = int(len(events) * 0.4), int(len(events) * 0.7)
    first = build_engine(settings, [MemorySink()])
    await first.start()
    await first.ingest(events[:cut])
    producer = PostgresStore(pg_url, 16, process=False)  # stores, never processes
    await producer.open()
    try:
        assert not producer.leader
        await producer.append_events(events[cut:stored_only])
    finally:
        await producer.close()
    await crash(first)
    marks = {p["part"]: p["watermark"] for p in (await progress(pg_url))["parts"] if p["top"] is not None}
    assert len(set(marks.values())) > 1, "partitions stopped at different watermarks"
    again = build_engine(settings, [MemorySink()])
    await again.start()  # the dead engine's leases still run: nothing to take yet
    follower = LogFollower(again, interval_s=0.02, rebalance_s=0.1)
    await follower.start()
    try:
        await wait_settled(pg_url, stored_only, seconds=30)
        assert again.stats.processed == stored_only - cut, "only what each partition had not processed"
        await again.ingest(events)
        assert again.stats.duplicates == stored_only
        await again.drain()
        await wait_settled(pg_url, len(events))
    finally:
        await follower.stop()
        await again.stop()
    assert await outcome(pg_url) == expected
    assert (await progress(pg_url))["processed"] == len(events)


async def test_changing_the_partition_count_of_a_used_database_is_refused(pg_url: str) -> None:
    store = PostgresStore(pg_url, 16)
    await store.open()
    await store.close()
    with pytest.raises(PostgresStoreError, match=r"store\.partitions = 16"):
        await PostgresStore(pg_url, 8).open()


async def _start_worker(url: str, sink: Path, handoff_log: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(KIT),
        url,
        "--sink",
        str(sink),
        "--handoffs",
        str(handoff_log),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(KIT.parent)},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 180)
    if line.strip() != b"ready":
        _, err = await proc.communicate()
        raise AssertionError(f"engine process did not start: {line!r} {err.decode()[-3000:]}")
    return proc


async def test_kill_9_mid_stream_is_taken_over_in_process_within_15_s(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent]
) -> None:
    """Two engine processes (default 8 s leases) split the partitions; one is killed with SIGKILL while a
    producer is still storing; the survivor takes its partitions without a restart, nothing lost or doubled."""
    expected = await reference(ref_url, tmp_path, events)
    # Both append to one JSON Lines file (shipped sink, deduping through the file) and each records every
    # handoff in a log of its own that dedupes nothing.
    shared, logs = tmp_path / "actions.jsonl", [tmp_path / "victim.handoffs", tmp_path / "survivor.handoffs"]
    victim = await _start_worker(pg_url, shared, logs[0])
    survivor = await _start_worker(pg_url, shared, logs[1])
    try:

        async def split() -> bool:
            parts = (await progress(pg_url))["parts"]
            owners = [p["owner"] for p in parts if p["live"]]
            return len(owners) == 16 and len(set(owners)) == 2 and all(owners.count(o) == 8 for o in set(owners))

        await wait_for(split, 30, "two processes split the partitions")
        victim_parts = {
            p["part"] for p in (await progress(pg_url))["parts"] if p["owner"].split(":")[1] == str(victim.pid)
        }
        assert len(victim_parts) == 8
        producer = PostgresStore(pg_url, 16, process=False)
        await producer.open()
        killed_at = 0.0
        try:
            for i in range(0, len(events), 100):
                await producer.append_events(events[i : i + 100])
                await asyncio.sleep(0.03)
                if not killed_at and i >= len(events) * 0.4:
                    state = await progress(pg_url)
                    if any(p["processed"] for p in state["parts"] if p["part"] in victim_parts):
                        victim.send_signal(signal.SIGKILL)  # mid-stream, mid-batch perhaps
                        killed_at = time.monotonic()
                        head = {p["part"]: p["top"] or 0 for p in state["parts"]}
        finally:
            await producer.close()
        assert killed_at, "the victim never processed anything before the stream ended"
        await victim.wait()

        async def taken_over() -> bool:
            state = await progress(pg_url)
            mine = [p for p in state["parts"] if p["part"] in victim_parts]
            return all(p["owner"] and str(survivor.pid) in p["owner"] for p in mine) and all(
                p["watermark"] >= head[p["part"]] for p in mine
            )

        await wait_for(taken_over, 30, "the survivor takes over and catches up")
        # Lease (8 s) + one lease round + rebuilding memory + the backlog, counted from the kill.
        failover = time.monotonic() - killed_at
        assert failover <= 15.0, f"takeover took {failover:.1f} s"
        state = await wait_settled(pg_url, len(events))
    finally:
        for proc in (victim, survivor):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (victim, survivor):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.communicate(), 60)
    assert survivor.returncode == 0 and victim.returncode == -signal.SIGKILL
    assert state["processed"] == len(events), "no event processed twice (or skipped)"
    assert await outcome(pg_url) == expected, "same cases, findings, actions and memory as one engine alone"
    ids = {row[0] for row in expected["actions"]}
    posted, handed = kit_posted(shared), kit_handoffs(logs)
    assert set(posted) == set(handed) == ids, "every action delivered, under the ids one engine alone makes"
    assert len(posted) == len(set(posted)), "doubled: an action posted twice to the shared sink"
    # Each engine hands one action at a time to its sinks and records it delivered right after, on a
    # connection of its own: only an action the victim had handed over but not yet recorded when it was
    # killed is handed over again by the survivor (sinks dedupe on action_id). So at most one.
    redelivered = len(handed) - len(set(handed))
    assert redelivered <= 1, f"{redelivered} actions handed to a sink twice"


async def test_a_clean_stop_hands_its_partitions_over_without_waiting_for_the_lease(
    pg_url: str, tmp_path: Path
) -> None:
    settings = settings_for(pg_url, tmp_path, lease=30.0)  # expiry would take 30 s: the handover must not wait
    a, b = build_engine(settings, [MemorySink()]), build_engine(settings, [MemorySink()])
    followers = await _start_followed(a, b)
    try:
        await wait_for(lambda: _async(len(held(a)) == len(held(b)) == 8), 10, "a fair split")
        await followers[1].stop()
        await b.stop()
        took = await wait_for(lambda: _async(len(held(a)) == 16), 5, "A takes B's released partitions")
        assert took < 2.0
    finally:
        await followers[0].stop()
        await a.stop()


async def _fed_by_a_producer(url: str, events: list[BaseEvent]) -> None:
    """Store events as a store-only process would (the engine under test processes them from the log)."""
    producer = PostgresStore(url, 16, process=False)
    await producer.open()
    try:
        for start in range(0, len(events), 500):
            await producer.append_events(events[start : start + 500])
    finally:
        await producer.close()


@contextlib.asynccontextmanager
async def _one_followed_engine(url: str, tmp_path: Path) -> AsyncIterator[tuple[Engine, PostgresStore]]:
    """One engine holding every partition, with a fast-polling follower; both stopped afterwards."""
    engine = build_engine(settings_for(url, tmp_path, lease=2.0), [MemorySink()])
    followers = await _start_followed(engine)
    try:
        store = engine.store
        assert isinstance(store, PostgresStore)
        yield engine, store
    finally:
        for f in followers:
            await f.stop()
        await engine.stop()


def _deadlock_once(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The next batch commit is refused by the database after its fence (its watermarks moved in the
    transaction); the list says whether that happened."""
    fence, failed = store.partitions.fence, []

    async def fence_then_deadlock(db: asyncpg.Connection) -> None:
        await fence(db)
        if not failed:
            failed.append(True)
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(store.partitions, "fence", fence_then_deadlock)
    return failed


async def test_a_batch_commit_that_fails_is_processed_again_and_nothing_is_skipped(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit refused by the database after its fence (a deadlock, a statement timeout) rolls back: the
    follower retries from the committed watermarks and memory, never past the failed batch's events."""
    expected = await reference(ref_url, tmp_path, events)
    async with _one_followed_engine(pg_url, tmp_path) as (engine, store):
        half = len(events) // 2
        await _fed_by_a_producer(pg_url, events[:half])
        await wait_settled(pg_url, half)
        failed = _deadlock_once(store, monkeypatch)
        await _fed_by_a_producer(pg_url, events[half:])
        state = await wait_settled(pg_url, len(events))
    assert failed, "a commit was refused"
    assert state["processed"] == engine.stats.processed == len(events), "each event processed once, none skipped"
    assert await outcome(pg_url) == expected


async def test_a_rebuild_that_fails_is_tried_again_before_anything_is_processed(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease change empties memory and loads it again; if the load fails (a cancelled snapshot), nothing
    is processed on empty memory (new case ids would overwrite stored cases): the next round loads again."""
    expected = await reference(ref_url, tmp_path, events)
    snapshot, refused = PostgresStore.snapshot, []

    async def cancelled_once(self: PostgresStore, hours: float) -> Any:
        if not refused:
            refused.append(True)
            raise asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")
        return await snapshot(self, hours)

    async with _one_followed_engine(pg_url, tmp_path) as (engine, _store):
        cut = int(len(events) * 0.8)
        await _fed_by_a_producer(pg_url, events[:cut])
        await wait_settled(pg_url, cut)
        assert engine.cases.active, "cases are open before the lease change"
        monkeypatch.setattr(PostgresStore, "snapshot", cancelled_once)
        with pytest.raises(asyncpg.exceptions.QueryCanceledError):
            await engine.rebalance(lambda: _async(True))  # as a lease round that changed the held set
        await _fed_by_a_producer(pg_url, events[cut:])
        state = await wait_settled(pg_url, len(events))
    assert refused and state["processed"] == len(events)
    assert await outcome(pg_url) == expected


async def test_dropped_connections_are_opened_again_and_processing_goes_on(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent]
) -> None:
    """What a server restart or pg_terminate_backend does to an engine's connections (processing and leases):
    both are opened again, and everything stored meanwhile is processed within the 15 s takeover target."""
    expected = await reference(ref_url, tmp_path, events)
    async with _one_followed_engine(pg_url, tmp_path) as (_engine, store):
        half = len(events) // 2
        await _fed_by_a_producer(pg_url, events[:half])
        await wait_settled(pg_url, half)
        pids = [store.db.get_server_pid(), store.partitions.con.get_server_pid()]
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        finally:
            await admin.close()
        await _fed_by_a_producer(pg_url, events[half:])
        state = await wait_settled(pg_url, len(events), seconds=15)
        assert store.db.get_server_pid() not in pids and store.partitions.con.get_server_pid() not in pids
    assert state["processed"] == len(events)
    assert await outcome(pg_url) == expected


async def test_a_transaction_a_frozen_process_left_open_does_not_block_the_takeover(
    pg_url: str, tmp_path: Path
) -> None:
    """A process frozen between its fence and its commit keeps its partitions' rows locked, and a taker skips
    locked rows: the server ends the idle transaction, so the partitions are still taken over in time."""
    settings = settings_for(pg_url, tmp_path, lease=2.0)
    a = build_engine(settings, [MemorySink()])
    await a.start()
    b: Engine | None = None
    follower: LogFollower | None = None
    frozen: Any = None
    try:
        store = a.store
        assert isinstance(store, PostgresStore) and len(held(a)) == 16
        await store.partitions.abandon(keep_connection=True)  # no more renewals, as when frozen
        frozen = store.db.transaction()
        await frozen.start()
        await store.db.fetch("SELECT part FROM partitions FOR UPDATE")  # the rows a fence locks
        b = build_engine(settings, [MemorySink()])
        await b.start()
        follower = LogFollower(b, interval_s=0.02, rebalance_s=0.1)
        await follower.start()
        took = await wait_for(lambda: _async(len(held(b)) == 16), 15, "B takes over past the open transaction")
        assert took > 1.0, "the leases had to run out first"
    finally:
        if frozen is not None:
            with contextlib.suppress(Exception):  # the server ended it (its connection is gone) unless it hung
                await frozen.rollback()
        if follower is not None:
            await follower.stop()
        if b is not None:
            await b.stop()
        await a.stop()


async def test_events_ingested_right_after_a_failed_catch_up_wait_for_the_rebuild(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's own intake (the queue, a webhook) can take the writer lock before the follower polls
    again: it must not process on from the marks and memory the failed batch left, which would move the
    watermark past that batch's events for good."""
    expected = await reference(ref_url, tmp_path, events)
    engine = build_engine(settings_for(pg_url, tmp_path, lease=2.0), [MemorySink()])
    await engine.start()
    store = engine.store
    assert isinstance(store, PostgresStore)
    try:
        half = len(events) // 2
        await _fed_by_a_producer(pg_url, events[:half])
        _deadlock_once(store, monkeypatch)
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
            await engine.catch_up(store.take_due)  # what the follower runs
        for start in range(half, len(events), 500):
            await engine.ingest(events[start : start + 500])  # before the follower's next poll
        await engine.catch_up(store.take_due)
        state = await wait_settled(pg_url, len(events))
    finally:
        await engine.stop()
    assert state["processed"] == len(events)
    assert await outcome(pg_url) == expected


async def test_the_intake_stopped_by_a_database_error_takes_events_again_once_memory_is_rebuilt(
    pg_url: str, ref_url: str, tmp_path: Path, events: list[BaseEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook's batch meets a deadlock: the engine refuses events (the sender retries) until the follower
    has rebuilt memory from the store, then takes them again in-process, as a restart would, losing none."""
    expected = await reference(ref_url, tmp_path, events)
    async with _one_followed_engine(pg_url, tmp_path) as (engine, store):
        half = len(events) // 2
        await _fed_by_a_producer(pg_url, events[:half])
        await wait_settled(pg_url, half)
        _deadlock_once(store, monkeypatch)
        chunk = events[half : half + 500]
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
            await engine.ingest(chunk)
        deadline = time.monotonic() + 10
        while True:  # the sender retries the same batch
            try:
                await engine.ingest(chunk)
                break
            except EngineError:
                assert time.monotonic() < deadline, "the intake never took events again"
                await asyncio.sleep(0.05)
        for start in range(half + 500, len(events), 500):
            await engine.ingest(events[start : start + 500])
        state = await wait_settled(pg_url, len(events))
    assert state["processed"] == len(events)
    assert await outcome(pg_url) == expected
