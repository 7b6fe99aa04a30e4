"""rejections on hand-built scenarios: refused and unanswered requests to minors, ratio, windows, restarts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from detector_harness import engine_with, feed
from groomguard.detectors.rejections import PENDING_REQUESTS, RejectionsDetector, RejectionsSettings, due_expiries
from groomguard.engine import Engine
from groomguard.events import Answer, ContactRequested
from groomguard.memory import MemoryRow
from groomguard.testing import T0, EventFactory

KIDS = [f"kid{i}" for i in range(12)]


def cast(f: EventFactory) -> list:
    out = [f.joined("adult"), f.adult("adult"), f.joined("grown"), f.adult("grown")]
    for k in KIDS:
        out += [f.joined(k), f.minor(k)]
    return out


def requests(f: EventFactory, answers: list[Answer | None], gap_hours: float = 2, source: str = "adult") -> list:
    out = []
    for kid, answer in zip(KIDS, answers, strict=False):
        rid = f"req-{source}-{kid}"
        out.append(f.contact(source, kid, request_id=rid, at=f.tick(hours=gap_hours)))
        if answer is not None:
            out.append(f.answer(source, kid, answer, request_id=rid, at=f.tick(minutes=30)))
    return out


def detector(**kw: object) -> RejectionsDetector:
    return RejectionsDetector(RejectionsSettings(**kw))  # type: ignore[arg-type]


async def test_fires_on_the_fourth_rejection_with_evidence(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.REJECTED] * 4)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert len(rec.findings) == 1
    finding = rec.findings[0]
    assert (
        finding.reason == "4 of 4 requests to 4 under-18 accounts in 28 days were refused: 4 rejected, 0 never answered"
    )
    assert [e.ref for e in finding.evidence] == [f"req-adult-kid{i}" for i in range(4)]
    assert finding.score == 0.45


async def test_one_or_a_few_rejections_never_alert(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.REJECTED] * 3)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert rec.findings == []


async def test_mostly_accepted_requests_stay_below_the_ratio(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.ACCEPTED] * 6 + [Answer.REJECTED] * 5)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert rec.findings == []


async def test_requests_to_adults_do_not_count(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f)
    for i in range(6):
        rid = f"r{i}"
        events += [
            f.contact("adult", "grown", request_id=rid),
            f.answer("adult", "grown", Answer.REJECTED, request_id=rid),
        ]
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_unanswered_requests_expire_into_refusals(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [None] * 4, gap_hours=1)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
        assert rec.findings == []  # still pending, not refused yet
        # Three days later the next request finds the first four expired.
        f.tick(hours=72)
        await feed(engine, [f.contact("adult", "kid9", request_id="late")])
    assert len(rec.findings) == 1
    assert "0 rejected, 4 never answered" in rec.findings[0].reason


async def test_explicit_expired_answers_count(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.EXPIRED, Answer.REJECTED, Answer.EXPIRED, Answer.REJECTED])
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert len(rec.findings) == 1 and "2 rejected, 2 never answered" in rec.findings[0].reason


async def test_window_edge_drops_old_refusals(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.REJECTED] * 3, gap_hours=1)
    f.tick(hours=24 * 28)
    events += requests(f, [None] * 3 + [Answer.REJECTED], gap_hours=0.1)[-2:]
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert rec.findings == []


async def test_restart_in_the_middle_of_a_window_keeps_the_counts(tmp_path: Path) -> None:
    db = tmp_path / "db"
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.REJECTED] * 2)
    async with engine_with(db, [detector()]) as (engine, rec):
        await feed(engine, events)
    rest = requests(f, [None, None, Answer.REJECTED, Answer.REJECTED])[-4:]
    async with engine_with(db, [detector()]) as (engine, rec):
        await feed(engine, rest, one_by_one=True)
    assert len(rec.findings) == 1 and rec.findings[0].reason.startswith("4 of 4")


async def test_answer_in_the_same_batch_as_the_request_counts(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.REJECTED] * 5)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events)
    assert [x.reason.split(" ")[0] for x in rec.findings] == ["4", "5"]


# -- expiry: the rejections detector owns it; the engine reports it on a clock -------------------


async def _pending(engine: Engine) -> list[str]:
    return [r.key for r in await engine.state.memory_book.rows(PENDING_REQUESTS)]


async def test_requests_left_unanswered_expire_on_the_clock_without_another_request(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [None] * 4, gap_hours=1)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
        sent = [e.at for e in events if isinstance(e, ContactRequested)]
        engine.clock = lambda: sent[0] + timedelta(hours=71, minutes=59)
        assert await engine.expire_requests() == 0 and rec.findings == []  # none is 72 hours old yet
        assert len(await _pending(engine)) == 4
        engine.clock = lambda: sent[2] + timedelta(hours=72)
        assert await engine.expire_requests() == 3 and rec.findings == []  # three refusals: below the floor
        engine.clock = lambda: sent[3] + timedelta(hours=72)
        assert await engine.expire_requests() == 1  # the account sent nothing since: it is still found
        assert await engine.expire_requests() == 0 and await _pending(engine) == []
    assert len(rec.findings) == 1
    assert "0 rejected, 4 never answered" in rec.findings[0].reason
    assert rec.findings[0].at == sent[3] + timedelta(hours=72), "dated at the expiry, not at the sweep"


async def test_answered_requests_and_requests_to_adults_never_expire(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.ACCEPTED, Answer.REJECTED, None])
    events += [f.contact("adult", "grown", request_id="to-an-adult")]
    async with engine_with(tmp_path / "db", [detector()]) as (engine, _):
        await feed(engine, events, one_by_one=True)
        assert await _pending(engine) == ["adult|kid2|req-adult-kid2"]
        engine.clock = lambda: f.now + timedelta(days=5)
        assert await engine.expire_requests() == 1


async def test_withdrawn_requests_count_neither_way(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [Answer.WITHDRAWN] * 6 + [Answer.REJECTED] * 4)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
        assert await _pending(engine) == []  # a withdrawal is an answer: nothing left to expire
        engine.clock = lambda: f.now + timedelta(days=5)
        assert await engine.expire_requests() == 0
    # Four refusals of four settled requests: the six withdrawn ones neither refuse nor dilute the ratio.
    assert rec.findings and "4 of 4 requests" in rec.findings[-1].reason


async def test_forget_erases_pending_requests(tmp_path: Path) -> None:
    f = EventFactory()
    events = cast(f) + requests(f, [None] * 3)
    async with engine_with(tmp_path / "db", [detector()]) as (engine, _):
        await feed(engine, events)
        await engine.forget("kid1")
        assert sorted(await _pending(engine)) == ["adult|kid0|req-adult-kid0", "adult|kid2|req-adult-kid2"]
        await engine.forget("adult")
        assert await _pending(engine) == []


def test_an_unreadable_pending_row_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    good = json.dumps(
        {"platform": "test", "event_id": "e1", "source": "a", "target": "k", "request_id": None, "at": T0.isoformat()}
    )
    rows = [MemoryRow(PENDING_REQUESTS, "c", "bad", "{}"), MemoryRow(PENDING_REQUESTS, "c", "a|k|a>k", good)]
    [answer] = due_expiries(rows, T0 + timedelta(days=3), RejectionsSettings())
    assert (answer.event_id, answer.answer, answer.at) == ("e1#expired", Answer.EXPIRED, T0 + timedelta(hours=72))
    assert "skipped unreadable pending request bad in c" in caplog.text
