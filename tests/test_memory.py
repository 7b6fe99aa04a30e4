"""Detector memory (groomguard.memory), event clocks and age-band authority, on a real SQLite store (issue 12)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from groomguard.app.runtime import build_engine
from groomguard.detectors.base import DetectorState
from groomguard.engine import Engine
from groomguard.events import AgeBand, BaseEvent, MessageSent
from groomguard.findings import Finding
from groomguard.testing import EventFactory, MemorySink, failing_commits, make_settings, running_engine


class Counter:
    """A toy detector that counts messages per conversation in its memory and reports every third."""

    name: ClassVar[str] = "counter"
    enabled: ClassVar[bool] = True
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)

    def __init__(self) -> None:
        self.seen: list[int] = []

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        assert isinstance(event, MessageSent)
        memory = state.memory(self.name)
        count = (await memory.get(event.community, event.conversation, at=event.at) or {"n": 0})["n"] + 1
        memory.put(
            event.community,
            event.conversation,
            {"n": count, "last": event.author},
            accounts=(event.author, *event.recipients),
            expires_at=event.at + timedelta(hours=1),
        )
        self.seen.append(count)
        return ()


async def _engine(db: Path, detector: Counter, **kw: object) -> Engine:
    engine = build_engine(make_settings(db), [MemorySink()], detectors=[detector], **kw)  # type: ignore[arg-type]
    await engine.start()
    return engine


async def test_memory_is_committed_with_the_batch_and_restored_after_restart(db: Path, ev: EventFactory) -> None:
    first = Counter()
    engine = await _engine(db, first)
    await engine.ingest([ev.message("adult", "hi", conversation="dm1", recipients=("kid",)) for _ in range(2)])
    await engine.ingest([ev.message("adult", "hi", conversation="dm1", recipients=("kid",))])
    assert first.seen == [1, 2, 3], "a write is readable at once, within and across batches"
    await engine.stop()
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT detector, community, key, value, accounts FROM detector_memory WHERE detector = 'counter'"
    )
    assert rows.fetchall() == [("counter", ev.community, "dm1", '{"last":"adult","n":3}', '["adult", "kid"]')]
    second = Counter()
    engine = await _engine(db, second)
    await engine.ingest([ev.message("adult", "hi", conversation="dm1", recipients=("kid",))])
    await engine.stop()
    assert second.seen == [4], "the restarted detector continues from the committed memory"


async def test_a_failed_commit_leaves_no_memory_behind(db: Path, ev: EventFactory) -> None:
    """The rows ride in the batch transaction: when it rolls back, the memory rolls back too."""
    detector = Counter()
    engine = await _engine(db, detector)
    await engine.ingest([ev.message("adult", "hi", conversation="dm1")])
    with failing_commits(engine.store, RuntimeError("disk full")), pytest.raises(RuntimeError, match="disk full"):
        await engine.ingest([ev.message("adult", "hi", conversation="dm1")])
    await engine.store.close()
    again = Counter()
    engine = await _engine(db, again)  # replays the stored-but-uncommitted event from the watermark
    await engine.stop()
    assert again.seen == [2], "the replayed event recomputes the memory once: not lost, not doubled"


async def test_memory_expires_in_event_time_and_is_purged_after_retention(db: Path, ev: EventFactory) -> None:
    detector = Counter()
    engine = await _engine(db, detector, clock=lambda: ev.now + timedelta(days=30, hours=1))
    engine.settings.store.message_retention_days = 30
    await engine.ingest([ev.message("adult", "hi", conversation="dm1")])
    ev.tick(hours=2)
    await engine.ingest([ev.message("adult", "hi", conversation="dm1")])
    assert detector.seen == [1, 1], "an expired row reads as absent"
    await engine.ingest([ev.message("adult", "hi", conversation="dm2")])
    ev.tick(hours=2)
    await engine.ingest([ev.message("adult", "hi", conversation="dm3")])
    removed = await engine.purge()
    await engine.stop()
    assert removed["detector_memory"] >= 1
    con = sqlite3.connect(db)
    keys = {r[0] for r in con.execute("SELECT key FROM detector_memory WHERE detector = 'counter'")}
    assert keys == {"dm3"}


async def test_forget_erases_memory_rows_naming_the_account(db: Path, ev: EventFactory) -> None:
    detector = Counter()
    engine = await _engine(db, detector)
    await engine.ingest(
        [
            ev.message("adult", "hi", conversation="dm1", recipients=("kid",)),
            ev.message("other", "hi", conversation="dm2", recipients=("kid2",)),
        ]
    )
    removed = await engine.forget("kid")
    assert removed.get("detector_memory") == 1
    await engine.ingest([ev.message("adult", "hi", conversation="dm1", recipients=("kid9",))])
    await engine.stop()
    assert detector.seen == [1, 1, 1], "forgotten in memory too: the count starts again"
    con = sqlite3.connect(db)
    assert "kid" not in {a for (row,) in con.execute("SELECT accounts FROM detector_memory") for a in json.loads(row)}


async def test_fan_out_rankings_survive_a_restart(db: Path, ev: EventFactory) -> None:
    """The community ranking fan_out compares against is memory too; a restart restores it exactly."""
    events = [ev.adult(f"a{i}") for i in range(30)] + [ev.minor(f"k{i}") for i in range(30)]
    for i in range(30):
        events += [ev.contact(f"a{i}", f"k{j}") for j in range(i % 5 + 1)]
    async with running_engine(db) as (engine, _):
        await engine.ingest(events)
        before = {k: (dict(r.values), r.cached, r.updates) for k, r in engine.state._rankings.items()}
    assert before, "fan_out records a ranking"
    async with running_engine(db) as (engine, _):
        after = {k: (dict(r.values), r.cached, r.updates) for k, r in engine.state._rankings.items()}
    assert after == before


# -- event clocks (issue 12 item 2) ---------------------------------------------------------------


async def test_far_future_event_is_refused_counted_and_purges_nothing(db: Path) -> None:
    ev = EventFactory(start=datetime.now(UTC) - timedelta(days=2))
    events = [ev.message("adult", f"hello {i}", conversation="dm", private=True) for i in range(20)]
    future = ev.message("adult", "from 9000", conversation="dm", private=True, at=datetime(9000, 1, 1, tzinfo=UTC))
    retention = {"store__message_retention_days": 30, "store__event_retention_days": 90}
    async with running_engine(db, **retention) as (engine, _):
        assert await engine.ingest([*events, future]) == 20
        assert engine.stats.rejected == {"future_time": 1}
        await engine.purge()
    async with running_engine(db, **retention) as (engine, _):  # a restart purges again
        counts = await engine.store.counts()
    assert counts["events"] == 20 and counts["messages"] == 20


async def test_one_communitys_clock_does_not_decay_anothers_cases(db: Path) -> None:
    now = datetime.now(UTC)
    a = EventFactory(community="a", start=now - timedelta(days=60))
    b = EventFactory(community="b", platform="other", start=now - timedelta(minutes=5))
    events: list[BaseEvent] = [a.adult("suspect")]
    for i in range(12):
        events += [a.minor(f"kid{i}"), a.contact("suspect", f"kid{i}")]
    async with running_engine(db) as (engine, _):
        await engine.ingest(events)
        await engine.ingest([b.message("someone", "hi")])  # b's clock is 60 days ahead of a's
        await engine.ingest([a.minor("kid12"), a.contact("suspect", "kid12")])  # updates a's case
    con = sqlite3.connect(db)
    risk, risk_at = con.execute("SELECT risk, risk_at FROM cases WHERE community = 'a'").fetchone()
    assert risk > 0.5, "community b's clock must not decay community a's case"
    assert risk_at.startswith((now - timedelta(days=60)).date().isoformat())


# -- age bands (issue 12 item 9) ------------------------------------------------------------------


async def test_only_a_moderator_lifts_a_minor_band_and_it_is_audited(db: Path, ev: EventFactory) -> None:
    async with running_engine(db) as (engine, _):
        await engine.ingest([ev.age("kid", "minor", source="self")])
        for source in ("role", "self", "text"):
            await engine.ingest([ev.age("kid", "adult", source=source)])
            assert (await engine.state.account(ev.community, "kid")).band is AgeBand.MINOR, source
        await engine.ingest([ev.age("grown", "adult", source="role"), ev.age("grown", "minor", source="self")])
        assert (await engine.state.account(ev.community, "grown")).band is AgeBand.MINOR, "other sources tighten"
        await engine.ingest([ev.age("kid", "adult", source="moderator")])
        assert (await engine.state.account(ev.community, "kid")).band is AgeBand.ADULT
    con = sqlite3.connect(db)
    rows = con.execute("SELECT actor, action, detail FROM audit WHERE action = 'age_band_lifted'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "moderator" and json.loads(rows[0][2])["account"] == "kid"


class _Talker:
    """Every message to a child is a finding that asks for a child notice."""

    name: ClassVar[str] = "talker"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, MessageSent) or not event.recipients:
            return ()
        return (
            Finding(
                detector="talker", platform=event.platform, community=event.community, suspect=event.author,
                score=0.9, reason="asked to keep a secret", at=event.at, event_key=event.key,
                child=event.recipients[0], notify_child=True, stages=("secrecy",),
            ),
        )  # fmt: skip


async def test_a_lagging_community_keeps_its_notice_rate_limit_across_a_restart(db: Path) -> None:
    """Notice history is restored per community clock: a community replaying older data is not reset."""
    now = datetime.now(UTC)
    slow = EventFactory(community="slow", platform="slow", start=now - timedelta(days=10))
    live = EventFactory(community="live", platform="live", start=now - timedelta(minutes=5))

    def engine() -> Engine:
        return build_engine(make_settings(db), [MemorySink()], detectors=[_Talker()])

    first = engine()
    await first.start()
    await first.ingest([slow.minor("kid"), slow.message("adult", "secret", conversation="dm", recipients=("kid",))])
    await first.ingest([live.message("someone", "hi")])  # the live community is ten days ahead
    assert first.stats.notices == 1
    await first.stop()
    second = engine()
    await second.start()
    await second.ingest([slow.message("adult", "secret again", conversation="dm", recipients=("kid",))])
    await second.stop()
    assert second.stats.notices == 0, "the child was warned about this account minutes ago (event time)"


async def test_forget_drops_cached_absences_whose_key_names_the_account() -> None:
    from groomguard.memory import MemoryBook

    book = MemoryBook()
    assert await book.get("d", "c", "adult|kid") is None  # a miss is cached as an absence under the key
    book.delete("d", "c", "adult|kid2")
    book.take_pending()  # committed: a cached deletion
    book.put("d", "c", "other", {"n": 1}, accounts=("someone",))
    book.forget("kid")
    assert [i for i in book._cache if "kid" in i[2]] == []
    assert await book.get("d", "c", "other") == {"n": 1}, "rows about others stay"
