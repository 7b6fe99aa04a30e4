"""Child notices for account patterns: a child contacted by an account with an open fan_out, rejections
or new-account case gets its own kind notice, rate-limited; the suspect sees nothing.

The webhook path is end to end: events arrive signed over HTTP, and the notice is an action the
platform delivers, POSTed (signed) to a real aiohttp server standing in for the platform.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from groomguard.actions import ChildNotice, ModAlert
from groomguard.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAdapter,
    sign,
)
from groomguard.app.runtime import build_engine
from groomguard.config import WebhookSettings
from groomguard.events import BaseEvent, ContactKind, dump_event
from groomguard.testing import EventFactory, MemorySink, make_settings, running_engine

SECRET = "pattern-notice-secret"
KIDS = [f"kid{i}" for i in range(10)]


def fan_out_then(f: EventFactory, extra: list[BaseEvent] | None = None) -> list[BaseEvent]:
    """An adult friend-requests seven children it shares nothing with (a fan_out alert on the 6th)."""
    events: list[BaseEvent] = [f.joined("adult"), f.adult("adult")]
    for i, kid in enumerate(KIDS):
        events += [f.joined(kid), f.minor(kid), f.region(kid, f"town{i}")]
    events += [f.contact("adult", kid, ContactKind.FRIEND, request_id=f"r{kid}") for kid in KIDS[:7]]
    return events + (extra or [])


async def test_children_contacted_after_the_alert_get_the_account_pattern_notice(db: Path) -> None:
    f = EventFactory()
    first = fan_out_then(f)
    later = [
        f.contact("adult", "kid8", ContactKind.FRIEND, request_id="r8", at=f.tick(hours=1)),
        f.message("adult", "hey", conversation="dm-9", private=True, recipients=("kid9",), at=f.tick(hours=1)),
        # The same child again within the rate-limit window: no second notice.
        f.contact("adult", "kid8", ContactKind.DM, request_id="r8b", at=f.tick(hours=1)),
    ]
    sink = MemorySink()
    async with running_engine(db, sink) as (engine, _):
        await engine.ingest(first)
        await engine.drain()
        assert sink.of(ModAlert), "fan_out alerted"
        before = {n.child for n in sink.of(ChildNotice)}
        for event in later:
            await engine.ingest([event])
        await engine.drain()
    notices = sink.of(ChildNotice)
    # The 6th and 7th children were contacted once the case had a card; then kid8 and kid9.
    assert before == {"kid5", "kid6"}
    assert [n.child for n in notices] == ["kid5", "kid6", "kid8", "kid9"]
    for notice in notices:
        assert "sent requests or messages to many young people" in notice.text
        assert "Childline" in notice.text and "adult" not in notice.text.replace("an adult you trust", "")
    assert all(a.child != "adult" for a in notices)


async def test_no_notice_before_a_card_after_a_dismissal_or_to_a_child_under_suspicion(db: Path) -> None:
    f = EventFactory()
    events = [f.joined("adult"), f.adult("adult"), f.joined("kid0"), f.minor("kid0")]
    # A case below the alert threshold (four refusals score 0.4): no card, so no notice.
    for kid in ("kid1", "kid2", "kid3", "kid4"):
        events += [f.joined(kid), f.minor(kid)]
        events += [f.contact("adult", kid, request_id=f"q{kid}"), f.answer("adult", kid, "rejected", f"q{kid}")]
    events.append(f.contact("adult", "kid0", request_id="q0"))
    sink = MemorySink()
    async with running_engine(db, sink) as (engine, _):
        await engine.ingest(events)
        await engine.drain()
        case = engine.cases.active[("test-community", "adult")]
        assert "rejections" in case.reasons and case.alert_version == 0
        assert sink.of(ChildNotice) == []
    # A dismissed fan_out case sends nothing more.
    f2 = EventFactory(community="c2")
    sink2 = MemorySink()
    async with running_engine(db.with_name("two.db"), sink2) as (engine, _):
        await engine.ingest(fan_out_then(f2))
        await engine.drain()
        case_id = engine.cases.active[("c2", "adult")].id
        await engine.ingest([f2.decision("mod", case_id, "dismiss")])
        sent = len(sink2.of(ChildNotice))
        await engine.ingest([f2.contact("adult", "kid8", request_id="r8", at=f2.tick(hours=2))])
        await engine.drain()
        assert len(sink2.of(ChildNotice)) == sent


class Platform:
    """A stand-in for the platform's notice endpoint: checks the signature, keeps every body."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        #: The Idempotency-Key of every attempt, refused ones included.
        self.keys: list[str] = []
        self.fail_next = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers[TIMESTAMP_HEADER]
        assert request.headers[SIGNATURE_HEADER] == sign(SECRET, ts, body)
        self.keys.append(request.headers[IDEMPOTENCY_HEADER])
        assert self.keys[-1] == json.loads(body)["action_id"]
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        self.received.append(json.loads(body))
        return web.json_response({"ok": True})


async def test_on_the_webhook_path_the_platform_delivers_the_notice(tmp_path: Path) -> None:
    platform = Platform()
    app = web.Application()
    app.router.add_post("/notices", platform.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = WebhookSettings(
        enabled=True, secret=SECRET, notice_url=f"http://127.0.0.1:{port}/notices", rate_per_second=1000
    )
    webhook = WebhookAdapter(settings.model_copy(update={"port": 0}))
    engine = build_engine(make_settings(tmp_path / "db"), [webhook])
    await engine.start()
    await webhook.start(engine)
    f = EventFactory(platform="mygame")
    platform.fail_next = 1  # the first notice meets a busy platform: it must stay in the outbox
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{webhook.port}/events"

            async def post(events: list[BaseEvent]) -> None:
                body = json.dumps([json.loads(dump_event(e)) for e in events]).encode()
                ts = str(int(time.time()))
                headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SECRET, ts, body)}
                async with session.post(url, data=body, headers=headers) as reply:
                    assert reply.status == 200, await reply.text()

            await post(fan_out_then(f))
            await post([f.contact("adult", "kid8", ContactKind.FOLLOW, request_id="r8", at=f.tick(hours=1))])
            await engine.drain()
            assert await engine.redeliver() >= 1  # what the busy platform refused is sent again
            await engine.drain()
    finally:
        await webhook.stop()
        await engine.stop()
        await runner.cleanup()
    children = sorted(n["child"] for n in platform.received)
    assert children == ["kid5", "kid6", "kid8"]
    for notice in platform.received:
        assert notice["kind"] == "child_notice" and notice["platform"] == "mygame"
        assert "adult" not in json.dumps({k: v for k, v in notice.items() if k != "text"})
    assert len({n["action_id"] for n in platform.received}) == 3
    # The refused notice was sent again under the same key: the platform can tell a repeat from a new notice.
    assert len(platform.keys) == 4 and set(platform.keys) == {n["action_id"] for n in platform.received}
