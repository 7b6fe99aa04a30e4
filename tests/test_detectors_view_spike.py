"""view_spike on hand-built scenarios: spikes against own baseline and community share, hard negatives, restarts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector_harness import engine_with, feed
from groomguard.detectors.view_spike import ViewSpikeDetector, ViewSpikeSettings
from groomguard.events import BaseEvent
from groomguard.state import VIEW_HISTORY_HOURS
from groomguard.testing import EventFactory

KIDS = [f"kid{i}" for i in range(8)]
GROWN = [f"grown{i}" for i in range(8)]


def cast(f: EventFactory, viewers: list[str]) -> list[BaseEvent]:
    out: list[BaseEvent] = []
    for v in viewers:
        out += [f.joined(v), f.adult(v)]
    for k in KIDS:
        out += [f.joined(k), f.minor(k)]
    for g in GROWN:
        out += [f.joined(g), f.adult(g)]
    return out


def background(f: EventFactory, viewer: str, hours: int, per_hour: int = 4) -> list[BaseEvent]:
    """Ordinary browsing: a few views an hour, one in four of a minor's post (the community's share)."""
    out: list[BaseEvent] = []
    for h in range(hours):
        base = f.tick(hours=1)
        for i in range(per_hour):
            author = KIDS[(h + i) % len(KIDS)] if i % 4 == 0 else GROWN[(h + i) % len(GROWN)]
            out.append(f.view(viewer, author, at=base.replace(minute=i)))
    return out


def spike(f: EventFactory, viewer: str, views: int, authors: list[str]) -> list[BaseEvent]:
    base = f.tick(hours=1).replace(minute=0)
    return [
        f.view(viewer, authors[i % len(authors)], at=base.replace(second=i % 60, minute=i // 60)) for i in range(views)
    ]


def detector(**kw: object) -> ViewSpikeDetector:
    return ViewSpikeDetector(ViewSpikeSettings(**kw))  # type: ignore[arg-type]


async def test_fires_on_a_spike_above_own_baseline_and_community_share(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["watcher"]) + background(f, "watcher", 48) + spike(f, "watcher", 30, KIDS[:5])
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert len(rec.findings) == 1
    finding = rec.findings[0]
    assert finding.suspect == "watcher" and finding.score == 0.5437
    assert finding.reason.startswith(
        "viewed 25 posts by 5 under-18 accounts in one hour (5 with no shared region or contact); usual is 0.9"
    )
    assert "100% of their views went to minors against" in finding.reason
    assert finding.evidence[0].kind == "view_bucket"


async def test_busy_adult_viewing_everyone_is_silent(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["busy"]) + background(f, "busy", 24)
    base = f.tick(hours=1).replace(minute=0)
    # 240 views in an hour, a quarter of them minors' posts: as much as anyone, but not aimed at children.
    for i in range(240):
        author = KIDS[i % 8] if i % 4 == 0 else GROWN[i % 8]
        events.append(f.view("busy", author, at=base.replace(minute=i // 4)))
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_parent_viewing_one_childs_posts_is_silent(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["parent"]) + background(f, "parent", 24) + spike(f, "parent", 60, ["kid0"])
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_steady_heavy_viewer_of_minors_is_judged_against_their_own_habit(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["youth_worker"])
    for _ in range(72):
        events += spike(f, "youth_worker", 30, KIDS)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    # Only the first hours (no habit yet) may fire; once the baseline learns 30/hour, it is quiet.
    assert (
        rec.findings
        and max(x.at for x in rec.findings) < events[-1].at.replace(minute=0) - (events[-1].at - events[0].at) / 2
    )


async def test_views_below_the_minimum_never_fire(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["watcher"]) + spike(f, "watcher", 20, KIDS)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_restart_in_the_middle_of_an_hour_keeps_the_counts(tmp_path: Path) -> None:
    db = tmp_path / "db"
    f = EventFactory()
    events = cast(f, ["watcher"]) + background(f, "watcher", 24) + spike(f, "watcher", 40, KIDS[:5])
    async with engine_with(db, [detector()]) as (engine, rec):
        await feed(engine, events[:-20])
    assert rec.findings == []
    async with engine_with(db, [detector()]) as (engine, rec):
        await feed(engine, events[-20:])
    assert len(rec.findings) == 1
    assert rec.findings[0].reason.startswith("viewed 25 posts by 5 under-18 accounts")


async def test_restart_after_firing_does_not_fire_again_in_the_same_hour(tmp_path: Path) -> None:
    """The "fired this hour" mark is detector memory in the store: a restart mid-burst keeps it (issue 12)."""
    db = tmp_path / "db"
    f = EventFactory()
    events = cast(f, ["watcher"]) + background(f, "watcher", 24) + spike(f, "watcher", 40, KIDS[:5])
    async with engine_with(tmp_path / "reference", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    uninterrupted = [x.event_key for x in rec.findings]
    assert len(uninterrupted) == 1
    async with engine_with(db, [detector()]) as (engine, first):
        await feed(engine, events[:-10], one_by_one=True)
    assert [x.event_key for x in first.findings] == uninterrupted
    async with engine_with(db, [detector()]) as (engine, second):
        await feed(engine, events[-10:], one_by_one=True)
    assert second.findings == [], "the restarted detector fired again for the same viewer and hour"
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM findings").fetchone()[0] == 1
    rows = con.execute("SELECT detector, key, accounts FROM detector_memory WHERE detector = 'view_spike'").fetchall()
    assert rows == [("view_spike", "watcher", '["watcher"]')]


async def test_a_late_view_keeps_the_minors_of_the_current_hour_as_a_restart_would(tmp_path: Path) -> None:
    """A late view (an earlier hour) rebuilds the viewer's stats: the current hour's minors must come back too.

    Before the fix the rebuild loaded the hour's distinct minors only for the late event's own hour,
    so the three minors viewed early in the burst hour stayed in the view count but not in the author
    count, until a restart (SIGKILL in tests/test_crash.py) rebuilt them; the finding then differed.
    """
    # Recent, so the restart's retention purge (48 h of distinct-author rows, wall clock) keeps them.
    f = EventFactory(start=datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30))
    events = cast(f, ["watcher"]) + background(f, "watcher", 24)
    hour = f.tick(hours=1).replace(minute=0)
    early = [f.view("watcher", k, at=hour.replace(minute=1 + i)) for i, k in enumerate(KIDS[5:8])]
    late = [f.view("watcher", KIDS[0], at=hour - timedelta(minutes=5))]
    burst = [f.view("watcher", KIDS[i % 5], at=hour.replace(minute=10, second=i)) for i in range(40)]
    async with engine_with(tmp_path / "reference", [detector()]) as (engine, rec):
        await feed(engine, events + early + late + burst, one_by_one=True)
    uninterrupted = [(x.reason, x.score, x.event_key) for x in rec.findings]
    db = tmp_path / "db"
    async with engine_with(db, [detector()]) as (engine, _first):
        await feed(engine, events + early + late, one_by_one=True)
    async with engine_with(db, [detector()]) as (engine, restarted):
        await feed(engine, burst, one_by_one=True)
    assert [(x.reason, x.score, x.event_key) for x in restarted.findings] == uninterrupted
    assert len(uninterrupted) == 1
    assert uninterrupted[0][0].startswith("viewed 25 posts by 8 under-18 accounts in one hour (8 with no shared")


async def test_old_viewers_are_pruned_from_memory(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["watcher", "later"]) + spike(f, "watcher", 30, KIDS)
    f.tick(hours=VIEW_HISTORY_HOURS + 2)
    events += spike(f, "later", 30, KIDS)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, _rec):
        await feed(engine, events)
        viewers = {v for (_c, v) in engine.state._viewers}
    assert viewers == {"later"}


async def test_local_youth_worker_viewing_children_of_their_region_is_silent(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f, ["worker"]) + [f.region(k, "north") for k in [*KIDS, "worker"]]
    events += background(f, "worker", 24) + spike(f, "worker", 60, KIDS)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


def test_silent_hours_fold_in_closed_form_exactly() -> None:
    from groomguard.state import _ViewerStats

    stepwise, closed = (
        _ViewerStats(hour=0, mean=12.0, var=30.0, alpha=0.05),
        _ViewerStats(hour=0, mean=12.0, var=30.0, alpha=0.05),
    )
    for _ in range(40):
        stepwise.fold(0.0)
    closed.fold_zeros(40)
    assert (closed.hours, round(closed.mean, 9), round(closed.var, 6)) == (
        stepwise.hours,
        round(stepwise.mean, 9),
        round(stepwise.var, 6),
    )
