"""Delivery from the outbox: recorded right after each handoff (never behind the writer lock), each action handed
over once per process whatever path reaches it, and a failed record retried without a second handoff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from groomguard.app.runtime import build_engine
from groomguard.engine import Engine
from groomguard.events import BaseEvent
from groomguard.testing import EventFactory, make_settings


def fan_out_events(ev: EventFactory, kids: int = 12) -> list[BaseEvent]:
    events: list[BaseEvent] = [ev.adult("groomer")]
    for i in range(kids):
        events += [ev.minor(f"kid{i}"), ev.contact("groomer", f"kid{i}")]
    return events


class CountingSink:
    """Counts every handoff (no dedupe of its own, like a plain webhook); refuses while `refuse` is set."""

    def __init__(self) -> None:
        self.handed: list[str] = []
        self.refuse = False

    async def deliver(self, action: Any) -> None:
        if self.refuse:
            raise ConnectionError("platform offline")
        await asyncio.sleep(0.001)  # a real hop: lets overlapping deliveries interleave
        self.handed.append(action.action_id)


async def waiting_actions(db: Path, sink: CountingSink, ev: EventFactory) -> tuple[Engine, list[Any]]:
    """An engine whose alerts stayed in the outbox (the platform was offline when they were made)."""
    engine = build_engine(make_settings(db), [sink])
    await engine.start()
    sink.refuse = True
    await engine.ingest(fan_out_events(ev))
    await engine.drain()
    sink.refuse = False
    pending = await engine.pending_actions()
    assert pending and sink.handed == []
    return engine, pending


async def test_a_delivery_is_recorded_while_a_batch_holds_the_writer_lock(db: Path, ev: EventFactory) -> None:
    sink = CountingSink()
    engine, pending = await waiting_actions(db, sink, ev)
    try:
        async with engine._lock:  # a long batch or catch-up: recording used to wait for its end
            await asyncio.wait_for(engine.redeliver(), 10)
            assert await engine.pending_actions() == [], "recorded at once, not after the batch"
        assert sorted(sink.handed) == sorted(a.action_id for a in pending)
    finally:
        await engine.stop()


async def test_overlapping_paths_hand_each_action_over_once(db: Path, ev: EventFactory) -> None:
    sink = CountingSink()
    engine, pending = await waiting_actions(db, sink, ev)
    try:
        # The idle redelivery, a rebalance's delivery and a caller's, at once, over the same outbox.
        await asyncio.gather(engine.redeliver(), engine.redeliver(), engine._deliver(pending))
        await engine.drain()
    finally:
        await engine.stop()
    assert sorted(sink.handed) == sorted(a.action_id for a in pending)


async def test_a_failed_record_is_retried_without_handing_the_action_over_again(db: Path, ev: EventFactory) -> None:
    sink = CountingSink()
    engine, pending = await waiting_actions(db, sink, ev)
    real = engine.store.mark_delivered
    failures = 0

    async def flaky(action_ids: Any, at: Any) -> None:
        nonlocal failures
        failures += 1
        raise OSError("database went away")

    try:
        engine.store.mark_delivered = flaky  # type: ignore[method-assign]
        await engine.redeliver()
        assert failures == len(pending) and len(await engine.pending_actions()) == len(pending)
        engine.store.mark_delivered = real  # type: ignore[method-assign]
        await engine.redeliver()
        assert await engine.pending_actions() == []
        assert engine.stats.delivery_errors >= len(pending)
    finally:
        engine.store.mark_delivered = real  # type: ignore[method-assign]
        await engine.stop()
    assert sorted(sink.handed) == sorted(a.action_id for a in pending), "handed over once, recorded twice"


class HeldSink:
    """Takes one action at a time and holds each until `go` is set (a platform backing off a rate limit)."""

    def __init__(self) -> None:
        self.entered, self.go = asyncio.Event(), asyncio.Event()
        self.posted: list[str] = []

    async def deliver(self, action: Any) -> None:
        self.entered.set()
        await self.go.wait()
        self.posted.append(action.action_id)


async def test_a_lease_round_waits_for_the_handoff_in_flight_and_hands_the_rest_to_the_taker(
    db: Path, ev: EventFactory
) -> None:
    """A partition must not be handed away while one of its actions is being posted: that action, still
    undelivered in the outbox, would be posted by the taker too. The round waits for that one handoff (and
    its record), not for the rest of the list: those are left undelivered for the new owner."""
    sink = HeldSink()
    engine = build_engine(make_settings(db), [sink])
    owned = {ev.community: True}
    engine.store.processes = lambda community: owned.get(community, False)  # type: ignore[attr-defined]
    await engine.start()
    try:
        await engine.ingest(fan_out_events(ev))
        await asyncio.wait_for(sink.entered.wait(), 10)

        async def release() -> bool:  # what a lease round does with an excess partition
            owned[ev.community] = False
            return True

        round_ = asyncio.create_task(engine.rebalance(release))
        await asyncio.sleep(0.2)
        assert not round_.done() and owned[ev.community], "the round waits for the handoff in flight"
        more = EventFactory(community="other", platform="other")
        assert await asyncio.wait_for(engine.ingest([more.adult("x")]), 5) == 1, "processing does not wait"
        sink.go.set()
        assert await asyncio.wait_for(round_, 10)
        pending = {a.action_id for a in await engine.store.pending_actions()}
        assert len(sink.posted) == 1 and sink.posted[0] not in pending, "posted once and recorded before release"
        assert pending, "the partition's other actions are left to the taker"
        await asyncio.sleep(0.2)
        assert len(sink.posted) == 1, "nothing more of the released partition is posted here"
    finally:
        sink.go.set()
        await engine.stop()


class AuditingSink:
    """Posts, then records an audit row through the engine, as the Discord cog does for a ban or a closed DM."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.entered = asyncio.Event()
        self.posted = 0

    async def deliver(self, action: Any) -> None:
        self.entered.set()
        await asyncio.sleep(0.05)  # the platform call
        assert self.engine is not None
        await self.engine.audit(datetime.now(UTC), "groomguard", "posted", {}, community=action.community)
        self.posted += 1


async def test_a_lease_round_and_a_sink_that_writes_an_audit_row_do_not_deadlock(db: Path, ev: EventFactory) -> None:
    """The round takes the delivery lock, then the writer lock; a sink in a handoff takes the writer lock
    (engine.audit): the other order would leave each waiting for the other, and the engine wedged."""
    sink = AuditingSink()
    engine = build_engine(make_settings(db), [sink])
    sink.engine = engine
    engine.store.processes = lambda community: True  # type: ignore[attr-defined]
    await engine.start()
    try:
        await engine.ingest(fan_out_events(ev))
        await asyncio.wait_for(sink.entered.wait(), 10)

        async def unchanged() -> bool:
            return False

        assert await asyncio.wait_for(engine.rebalance(unchanged), 5) is False
        await asyncio.wait_for(engine.drain(), 10)
        assert sink.posted >= 1 and not await engine.store.pending_actions()
    finally:
        await engine.stop()
