"""Answers stored before their requests (two producers, two webhook senders): the same findings and cases as
in order, the held answer surviving a restart, and its window bounding how long it is held."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from detector_harness import engine_with, feed
from groomguard.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAdapter, sign
from groomguard.config import WebhookSettings
from groomguard.detectors.fan_out import FanOutDetector, FanOutSettings
from groomguard.detectors.rejections import PENDING_REQUESTS, RejectionsDetector, RejectionsSettings
from groomguard.engine import HELD_ANSWERS, Engine
from groomguard.events import Answer, BaseEvent, ContactAnswered, ContactRequested, dump_event
from groomguard.testing import EventFactory

KIDS = [f"kid{i}" for i in range(12)]


def cast(f: EventFactory) -> list[BaseEvent]:
    out: list[BaseEvent] = [f.joined("adult"), f.adult("adult"), f.joined("grown"), f.adult("grown")]
    for k in KIDS:
        out += [f.joined(k), f.minor(k)]
    return out


def asks(f: EventFactory, answers: list[Answer], gap_hours: float = 2) -> list[tuple[BaseEvent, BaseEvent]]:
    """(request, answer) pairs from "adult" to the kids, each answer 30 minutes after its request."""
    pairs = []
    for kid, answer in zip(KIDS, answers, strict=False):
        rid = f"req-{kid}"
        request = f.contact("adult", kid, request_id=rid, at=f.tick(hours=gap_hours))
        pairs.append((request, f.answer("adult", kid, answer, request_id=rid, at=f.tick(minutes=30))))
    return pairs


def in_order(pairs: list[tuple[BaseEvent, BaseEvent]]) -> list[BaseEvent]:
    return [e for pair in pairs for e in pair]


def answers_first(pairs: list[tuple[BaseEvent, BaseEvent]]) -> list[BaseEvent]:
    """The same events (same ids and times), each answer stored before its request."""
    return [e for request, answer in pairs for e in (answer, request)]


def detectors() -> list[Any]:
    return [FanOutDetector(FanOutSettings()), RejectionsDetector(RejectionsSettings())]


async def outcome(engine: Engine) -> dict[str, Any]:
    """Findings and cases as a moderator sees them (case numbers included), and the requests' stored statuses."""
    cases = []
    for row in sorted(await engine.list_cases(limit=100), key=lambda r: r["id"]):
        found = await engine.get_case(row["id"])
        assert found is not None
        case, findings, _ = found
        cases.append(
            (
                case.id,
                case.suspect,
                case.status,
                case.alert_version,
                sorted(case.reasons),
                [(x["detector"], x["score"], x["reason"], x["at"], x["child"]) for x in findings],
            )
        )
    statuses = sorted(
        (r.target, r.status)
        for r in await engine.state.requests_sent("test-community", "adult", engine.clock() - timedelta(days=3650))
    )
    return {"cases": cases, "requests": statuses}


async def run(db: Path, events: list[BaseEvent], one_by_one: bool, after: list[BaseEvent] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    async with engine_with(db, detectors()) as (engine, rec):
        await feed(engine, events, one_by_one=one_by_one)
        if after:
            await feed(engine, list(after), one_by_one=True)
        result = await outcome(engine)
        result["findings"] = [(x.detector, x.score, x.reason, x.at, x.event_key, x.child) for x in rec.findings]
        result["held"] = [r.key for r in await engine.state.memory_book.rows(HELD_ANSWERS) if r.value is not None]
        result["pending"] = [r.key for r in await engine.state.memory_book.rows(PENDING_REQUESTS)]
        return result


async def test_answers_before_their_requests_give_the_same_findings_and_cases(tmp_path: Path) -> None:
    f = EventFactory()
    head = cast(f)
    pairs = asks(f, [Answer.REJECTED] * 5 + [Answer.ACCEPTED] * 2 + [Answer.REJECTED])
    # Four days on, one more request: every request must be settled as answered, none left to expire.
    f.tick(hours=96)
    tail = [f.contact("adult", "kid11", request_id="late", at=f.tick())]
    for one_by_one in (True, False):
        name = "batches" if one_by_one else "one"
        expected = await run(tmp_path / f"in-{name}", head + in_order(pairs) + tail, one_by_one)
        got = await run(tmp_path / f"swap-{name}", head + answers_first(pairs) + tail, one_by_one)
        assert expected["findings"], "the scenario must fire rejections"
        assert [x[2].split(":")[1] for x in expected["findings"]][-1] == " 6 rejected, 0 never answered"
        assert got["findings"] == expected["findings"]
        assert got["cases"] == expected["cases"]
        assert got["requests"] == expected["requests"]
        assert "pending" not in {status for _, status in got["requests"] if _ != "kid11"}
        assert got["held"] == [] and got["pending"] == expected["pending"] == ["adult|kid11|late"]


async def test_accepted_answers_stored_first_never_expire_into_refusals(tmp_path: Path) -> None:
    """Before, an answer stored ahead of its request was lost: the request stayed pending and expired into a
    "never answered" refusal three days later, so a well-liked adult looked rejected."""
    f = EventFactory()
    events = cast(f) + answers_first(asks(f, [Answer.ACCEPTED] * 3 + [Answer.REJECTED] * 3))
    f.tick(hours=96)
    later = [f.contact("adult", "kid10", request_id="later", at=f.tick())]
    got = await run(tmp_path / "db", events, one_by_one=True, after=later)
    assert got["findings"] == []
    assert dict(got["requests"]) == {
        **{f"kid{i}": "accepted" for i in range(3)},
        **{f"kid{i}": "rejected" for i in range(3, 6)},
        "kid10": "pending",
    }


async def test_a_held_answer_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "db"
    f = EventFactory()
    head = cast(f)
    pairs = asks(f, [Answer.REJECTED] * 4)
    expected = await run(tmp_path / "reference", head + in_order(pairs), one_by_one=True)
    assert len(expected["findings"]) == 1
    early = [answer for _, answer in pairs]
    async with engine_with(db, detectors()) as (engine, rec):
        await feed(engine, head + in_order(pairs[:3]) + [early[3]], one_by_one=True)
        assert rec.findings == []
        assert [r.key for r in await engine.state.memory_book.rows(HELD_ANSWERS)] == ["adult|kid3|req-kid3"]
    # A new process: the answer is remembered in the store, and its request still settles as rejected.
    got = await run(db, [pairs[3][0]], one_by_one=True)
    assert got["findings"] == expected["findings"]
    assert got["cases"] == expected["cases"]
    assert got["held"] == []


async def test_an_answer_is_held_only_for_the_reorder_window(tmp_path: Path) -> None:
    f = EventFactory()
    head = cast(f)
    request, answer = asks(f, [Answer.REJECTED])[0]
    assert isinstance(request, ContactRequested) and isinstance(answer, ContactAnswered)
    # The request is only stored (and dated) a day and a half after the answer: past the 24 h window.
    late = request.model_copy(update={"at": answer.at + timedelta(hours=36)})
    got = await run(tmp_path / "db", [*head, answer, late], one_by_one=True)
    assert dict(got["requests"]) == {"kid0": "pending"}, "too late to match: it waits for an answer again"
    assert got["pending"] == ["adult|kid0|req-kid0"]
    soon = request.model_copy(update={"at": answer.at + timedelta(hours=20)})
    got = await run(tmp_path / "db2", [*head, answer, soon], one_by_one=True)
    assert dict(got["requests"]) == {"kid0": "rejected"} and got["pending"] == []


async def test_answers_whose_requests_never_come_are_not_held_forever(tmp_path: Path) -> None:
    """An answer to a request from before GroomGuard was installed: its accepted contact counts at once
    (fan_out's mutual contacts), and the held row expires with the window."""
    f = EventFactory()
    events = [
        *cast(f),
        f.answer("adult", "kid1", Answer.ACCEPTED, request_id="old", at=f.tick()),
        # An adult's answer is never held: rejections reads only the statuses of requests to minors.
        f.answer("kid2", "grown", Answer.REJECTED, request_id="old2", at=f.tick()),
    ]
    async with engine_with(tmp_path / "db", detectors()) as (engine, _):
        await feed(engine, events, one_by_one=True)
        assert "kid1" in await engine.state.accepted_contacts("test-community", "adult")
        rows = [r for r in await engine.state.memory_book.rows(HELD_ANSWERS) if r.value is not None]
        assert [r.key for r in rows] == ["adult|kid1|old"]
        assert rows[0].expires_at == events[-2].at + timedelta(hours=24)
        # A day on, the row is hidden (and the engine's index drops it at the next purge).
        await feed(engine, [f.contact("grown", "adult", at=f.tick(hours=25))])
        assert await engine.state.memory_book.get(HELD_ANSWERS, "test-community", "adult|kid1|old", f.now) is None
        removed = await engine.purge()
        assert removed["held_answers_expired"] == 1


async def test_two_webhook_senders_on_sqlite_give_the_findings_of_one_in_order(tmp_path: Path) -> None:
    """One sender posts the children's answers, another (slower) the requests: over real HTTP into one engine."""
    f = EventFactory(platform="mygame")
    head = cast(f)
    pairs = asks(f, [Answer.REJECTED] * 5)
    expected = await run(tmp_path / "reference", head + in_order(pairs), one_by_one=True)
    secret = "two-senders-secret"
    settings = WebhookSettings(enabled=True, secret=secret, rate_per_second=1000)
    webhook = WebhookAdapter(settings.model_copy(update={"port": 0}))  # any free port
    async with engine_with(tmp_path / "db", detectors()) as (engine, rec):
        await feed(engine, head)
        await webhook.start(engine)
        try:
            async with aiohttp.ClientSession() as answers, aiohttp.ClientSession() as requests:

                async def post(session: aiohttp.ClientSession, event: BaseEvent) -> None:
                    body = dump_event(event).encode()
                    ts = str(int(time.time()))
                    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}
                    url = f"http://127.0.0.1:{webhook.port}/events"
                    async with session.post(url, data=body, headers=headers) as reply:
                        assert reply.status == 200, await reply.text()

                for _, answer in pairs:
                    await post(answers, answer)  # the answer's sender is ahead...
                for request, _ in pairs:
                    await post(requests, request)  # ...of the requests' sender
        finally:
            await webhook.stop()
        findings = [(x.detector, x.score, x.reason, x.at, x.event_key, x.child) for x in rec.findings]
        assert findings == expected["findings"] and len(findings) == 2
        assert await outcome(engine) == {k: expected[k] for k in ("cases", "requests")}
