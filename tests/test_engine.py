"""The engine end to end: replay → findings → one case per suspect → one alert card, updated in place."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.app.runtime import build_engine
from groomguard.events import BaseEvent, ContentViewed, MessageSent
from groomguard.findings import Finding
from groomguard.testing import EventFactory, MemorySink, failing_commits, make_settings, running_engine
from groomguard.testing.simulate import generate


def fan_out_events(ev: EventFactory, suspect: str = "groomer", kids: int = 12) -> list[BaseEvent]:
    events: list[BaseEvent] = [ev.adult(suspect)]
    for i in range(kids):
        events += [ev.minor(f"kid{i}"), ev.contact(suspect, f"kid{i}")]
    return events


async def test_demo_community_alerts_on_planted_groomers(db: Path) -> None:
    events, truth = generate()
    async with running_engine(db) as (engine, sink):
        await engine.ingest(events)
        await engine.drain()
    alerted = {a.suspect for a in sink.of(ModAlert)}
    fan_out_groomers = {g for g, kind in truth.groomers.items() if kind == "fan_out"}
    assert fan_out_groomers <= alerted
    assert not alerted & set(truth.minors)


async def test_one_case_and_card_updated_in_place(db: Path, ev: EventFactory) -> None:
    async with running_engine(db) as (engine, sink):
        await engine.ingest(fan_out_events(ev, kids=15))
        await engine.drain()
    alerts = sink.of(ModAlert)
    assert {a.case_id for a in alerts} == {1}
    assert [a.version for a in alerts] == list(range(1, len(alerts) + 1))
    assert len(alerts) >= 2, "more minors contacted should update the existing card"
    assert alerts[-1].risk > alerts[0].risk
    assert "under-18" in alerts[-1].reasons[0].text
    assert alerts[-1].evidence


class Exploding:
    name: ClassVar[str] = "exploding"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (BaseEvent,)
    enabled: ClassVar[bool] = True

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
        if isinstance(event, MessageSent) and event.text == "boom":
            raise RuntimeError("detector bug")
        return ()


async def test_detector_exception_is_isolated(db: Path, ev: EventFactory, caplog) -> None:  # type: ignore[no-untyped-def]
    from groomguard.engine import build_detectors

    settings = make_settings(db)
    engine = build_engine(settings, [MemorySink()], detectors=[Exploding(), *build_detectors(settings)])
    await engine.start()
    bad = ev.message("a", "boom")
    await engine.submit(bad)
    for event in fan_out_events(ev):
        await engine.submit(event)
    await engine.drain()
    await engine.stop()
    assert engine.stats.detector_errors == 1
    assert engine.stats.processed == 1 + len(fan_out_events(EventFactory()))
    assert engine.stats.alerts == 1
    assert bad.key in caplog.text and "exploding" in caplog.text


async def test_back_pressure_bounds_the_queue(db: Path, ev: EventFactory) -> None:
    settings = make_settings(db)
    settings.engine.queue_size = 10
    settings.engine.batch_size = 5
    engine = build_engine(settings, [])
    await engine.start()
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, engine.queue_depth)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    events = [ev.message(f"u{i % 7}", "hi") for i in range(500)]
    for event in events:
        await engine.submit(event)
    await engine.drain()
    watcher.cancel()
    await engine.stop()
    assert engine.stats.processed == 500
    assert peak <= 10


async def test_decisions_dismiss_confirm_ban(db: Path, ev: EventFactory) -> None:
    async with running_engine(db) as (engine, sink):
        await engine.ingest(fan_out_events(ev, "g1") + fan_out_events(ev, "g2"))
        await engine.drain()
        by_suspect = {a.suspect: a.case_id for a in sink.of(ModAlert)}
        before = {a.case_id: a.risk for a in sink.of(ModAlert)}
        await engine.ingest(
            [ev.decision("mod", by_suspect["g1"], "dismiss"), ev.decision("mod", by_suspect["g2"], "ban")]
        )
        await engine.drain()
        # A decision on a closed case is refused and audited, never applied twice.
        await engine.ingest([ev.decision("mod", by_suspect["g2"], "confirm")])
        await engine.drain()
        stored = {c["id"]: c for c in await engine.store.list_cases()}
        found = await engine.store.get_case(by_suspect["g2"])
    assert stored[by_suspect["g1"]]["status"] == "dismissed"
    assert stored[by_suspect["g1"]]["risk"] < before[by_suspect["g1"]] * 0.5
    assert stored[by_suspect["g2"]]["status"] == "banned"
    bans = sink.of(Enforcement)
    assert [(b.suspect, b.decision.value, b.moderator) for b in bans] == [("g2", "ban", "mod")]
    assert found is not None
    assert [a["action"] for a in found[2]] == ["ban", "decision_rejected"]
    assert engine.cases.threshold_for("test-community", "g1") > engine.settings.cases.alert_threshold


class Scripted:
    """Emits a finding with the score written in the message text (e.g. "0.65")."""

    name: ClassVar[str] = "scripted"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
        if not isinstance(event, MessageSent):
            return ()
        return (
            Finding(
                detector="scripted",
                platform=event.platform,
                community=event.community,
                suspect=event.author,
                score=float(event.text),
                reason=f"scored {event.text}",
                at=event.at,
                event_key=event.key,
            ),
        )


async def test_dismissed_suspect_needs_more_to_realert(db: Path, ev: EventFactory) -> None:
    settings = make_settings(db)
    sink = MemorySink()
    engine = build_engine(settings, [sink], detectors=[Scripted()])
    await engine.start()
    await engine.ingest([ev.message("g", "0.65")])
    await engine.drain()
    case_id = sink.of(ModAlert)[0].case_id
    await engine.ingest([ev.decision("mod", case_id, "dismiss")])
    await engine.drain()
    seen = len(sink.actions)
    ev.tick(days=10)
    # 0.65 alerted before; after one dismissal the bar is 0.6 + 0.15, so the same score stays quiet...
    await engine.ingest([ev.message("g", "0.65")])
    await engine.drain()
    assert [a for a in sink.actions[seen:] if isinstance(a, ModAlert)] == []
    # ...and stronger evidence still gets through, on a new case.
    await engine.ingest([ev.message("g", "0.8")])
    await engine.drain()
    await engine.stop()
    realerts = [a for a in sink.actions[seen:] if isinstance(a, ModAlert)]
    assert [(a.case_id != case_id, a.status) for a in realerts] == [(True, "open")]


async def test_child_notice_goes_to_child_never_suspect(db: Path, ev: EventFactory) -> None:
    class Talker:
        name: ClassVar[str] = "talker"
        handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
        enabled: ClassVar[bool] = True

        def forget(self, account: str, community: str | None = None) -> None:
            """It keeps nothing about accounts."""

        async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
            if not isinstance(event, MessageSent):
                return ()
            return (
                Finding(
                    detector="talker",
                    platform=event.platform,
                    community=event.community,
                    suspect=event.author,
                    score=0.9,
                    reason="asked to keep a secret",
                    at=event.at,
                    event_key=event.key,
                    child=event.recipients[0],
                    notify_child=True,
                    stages=("secrecy",),
                ),
            )

    settings = make_settings(db)
    sink = MemorySink()
    engine = build_engine(settings, [sink], detectors=[Talker()])
    await engine.start()
    for _ in range(5):
        await engine.submit(ev.message("suspect-zed", "...", conversation="dm", private=True, recipients=("kid",)))
    await engine.drain()
    await engine.stop()
    notices = sink.of(ChildNotice)
    assert len(notices) == 1, "rate limit: one notice per child and account per day"
    assert engine.stats.notices_suppressed == 4
    notice = notices[0]
    assert notice.child == "kid"
    assert "0800 1111" in notice.text and "secret" in notice.text
    assert "suspect-zed" not in notice.text and "talker" not in notice.text and "0.9" not in notice.text
    assert all(getattr(a, "child", None) != "suspect-zed" for a in sink.actions)


async def test_forget_reaches_detectors_that_keep_memory(db: Path, ev: EventFactory) -> None:
    class Remembering:
        name: ClassVar[str] = "remembering"
        handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
        enabled: ClassVar[bool] = True

        def __init__(self) -> None:
            self.seen: set[str] = set()

        async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
            if isinstance(event, MessageSent):
                self.seen.add(event.author)
            return ()

        def forget(self, account: str, community: str | None = None) -> None:
            self.seen.discard(account)

    detector = Remembering()
    engine = build_engine(make_settings(db), [], detectors=[detector])
    await engine.start()
    await engine.ingest([ev.message("alice", "hi"), ev.message("bob", "hi")])
    await engine.forget("alice")
    await engine.stop()
    assert detector.seen == {"bob"}


async def test_decision_from_another_platform_is_refused(db: Path, ev: EventFactory) -> None:
    async with running_engine(db) as (engine, sink):
        await engine.ingest(fan_out_events(ev, "g", kids=12))
        await engine.drain()
        case_id = sink.of(ModAlert)[0].case_id
        other = EventFactory(community=ev.community, platform="webhook", start=ev.tick())
        await engine.ingest([other.decision("mod", case_id, "ban")])
        await engine.drain()
        found = await engine.store.get_case(case_id)
    assert sink.of(Enforcement) == []
    assert found is not None and found[0].status == "open"
    assert [a["action"] for a in found[2]] == ["decision_rejected"]


async def test_self_declared_minor_is_still_watched_and_never_notified_as_a_child(db: Path, ev: EventFactory) -> None:
    # An adult who tells the bot "I'm 14" must neither escape the detectors nor receive child notices
    # while it is itself a suspect.
    events: list[BaseEvent] = [ev.age("poser", "minor", source="self", age=14)]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("poser", f"kid{i}")]
    async with running_engine(db) as (engine, sink):
        await engine.ingest(events)
        await engine.drain()
        assert {a.suspect for a in sink.of(ModAlert)} == {"poser"}
        finding = Finding(
            detector="t",
            platform=ev.platform,
            community=ev.community,
            suspect="other",
            score=0.3,
            reason="r",
            at=ev.tick(),
            event_key="k",
            child="poser",
            notify_child=True,
        )
        actions = engine._on_finding(finding, [])
        assert not [a for a in actions if isinstance(a, ChildNotice)]


async def test_failed_ingest_stops_the_engine_instead_of_skipping_events(db: Path, ev: EventFactory) -> None:
    import sqlite3

    import pytest
    from groomguard.engine import EngineError

    engine = build_engine(make_settings(db), [])
    await engine.start()
    with (
        failing_commits(engine.store, sqlite3.OperationalError("disk I/O error")),
        pytest.raises(sqlite3.OperationalError),
    ):
        await engine.ingest([ev.message("a", "hi")])
    with pytest.raises(EngineError):
        await engine.ingest([ev.message("a", "again")])
    await engine.stop()
    async with running_engine(db) as (again, _):
        assert again.stats.processed == 1  # the stored event is processed on restart, not skipped


async def test_detectors_only_receive_the_event_types_they_declare(db: Path, ev: EventFactory) -> None:
    seen: list[str] = []

    class OnlyViews:
        name: ClassVar[str] = "only_views"
        enabled: ClassVar[bool] = True
        handles: ClassVar[tuple[type[BaseEvent], ...]] = (ContentViewed,)

        def forget(self, account: str, community: str | None = None) -> None:
            """It keeps nothing about accounts."""

        async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
            seen.append(event.type)  # type: ignore[attr-defined]
            return ()

    engine = build_engine(make_settings(db), [], detectors=[OnlyViews()])
    await engine.start()
    await engine.ingest([ev.message("a", "hi"), ev.view("a", "b"), ev.contact("a", "b"), ev.view("b", "a")])
    await engine.stop()
    assert seen == ["content_viewed", "content_viewed"]
