"""The webhook against a real aiohttp server on 127.0.0.1: signing, replay window, limits, validation, idempotency."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, RateLimiter, WebhookAdapter, sign
from bot.config import WebhookSettings
from bot.engine import Engine
from bot.events import dump_event
from bot.testing import EventFactory, running_engine

SECRET = "test-shared-secret"


class Client:
    """Signs and posts bodies to the running webhook."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def post(
        self, body: bytes, timestamp: int | None = None, secret: str = SECRET, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        ts = int(time.time()) if timestamp is None else timestamp
        sent = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}
        sent.update(headers or {})
        async with self.session.post(self.url, data=body, headers=sent) as response:
            return response.status, await response.json()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Client, Engine]]:
    settings = WebhookSettings(enabled=True, secret=SECRET, max_body_bytes=4096, rate_per_second=50)
    adapter = WebhookAdapter(settings.model_copy(update={"port": 0}))
    async with running_engine(tmp_path / "db") as (engine, _sink):
        await adapter.start(engine)
        assert adapter.port
        try:
            async with aiohttp.ClientSession() as session:
                yield Client(session, f"http://127.0.0.1:{adapter.port}/events"), engine
        finally:
            await adapter.stop()


def batch(f: EventFactory, n: int = 3) -> list[dict[str, Any]]:
    return [json.loads(dump_event(f.contact("adult", f"kid{i}"))) for i in range(n)]


async def test_good_batch_is_stored_before_the_answer(served: tuple[Client, Engine]) -> None:
    client, engine = served
    status, body = await client.post(json.dumps(batch(EventFactory())).encode())
    assert (status, body) == (200, {"accepted": 3, "duplicates": 0, "duplicate_ids": []})
    assert (await engine.store.counts())["events"] == 3  # durable by the time the 200 arrived


async def test_single_event_object_is_accepted(served: tuple[Client, Engine]) -> None:
    client, _engine = served
    status, body = await client.post(json.dumps(batch(EventFactory(), 1)[0]).encode())
    assert status == 200 and body["accepted"] == 1


async def test_bad_signature_is_refused_and_nothing_stored(served: tuple[Client, Engine]) -> None:
    client, engine = served
    status, body = await client.post(json.dumps(batch(EventFactory())).encode(), secret="wrong")
    assert status == 401 and body["field"] == SIGNATURE_HEADER
    status, body = await client.post(b"[]", headers={SIGNATURE_HEADER: "md5=abc"})
    assert status == 401 and body["field"] == SIGNATURE_HEADER
    assert (await engine.store.counts())["events"] == 0
    assert engine.stats.rejected == {"webhook": 2}


async def test_stale_or_missing_timestamp_is_refused(served: tuple[Client, Engine]) -> None:
    client, _engine = served
    body = json.dumps(batch(EventFactory())).encode()
    status, out = await client.post(body, timestamp=int(time.time()) - 3600)
    assert status == 401 and out["field"] == TIMESTAMP_HEADER and "3600 s" in out["error"]
    status, out = await client.post(body, headers={TIMESTAMP_HEADER: "yesterday"})
    assert status == 400 and out["field"] == TIMESTAMP_HEADER


async def test_oversized_body_is_refused(served: tuple[Client, Engine]) -> None:
    client, _engine = served
    status, body = await client.post(json.dumps(batch(EventFactory(), 40)).encode())
    assert status == 413 and body["field"] == "body"


async def test_malformed_event_names_the_field_and_stores_nothing(served: tuple[Client, Engine]) -> None:
    client, engine = served
    events = batch(EventFactory())
    del events[1]["target"]
    status, body = await client.post(json.dumps(events).encode())
    assert status == 422 and body["field"] == "[1].target" and body["index"] == 1
    events = batch(EventFactory())
    events[0]["at"] = "2026-01-01T00:00:00"
    status, body = await client.post(json.dumps(events).encode())
    assert status == 422 and body["field"] == "[0].at" and "timezone" in body["error"]
    status, body = await client.post(b"{not json")
    assert status == 400 and body["field"] == "body"
    status, body = await client.post(json.dumps({"type": "nope"}).encode())
    assert status == 422 and body["field"] == "type"
    assert (await engine.store.counts())["events"] == 0


async def test_duplicate_event_ids_are_accepted_idempotently_and_reported(served: tuple[Client, Engine]) -> None:
    client, engine = served
    events = batch(EventFactory())
    assert (await client.post(json.dumps(events).encode()))[0] == 200
    status, body = await client.post(json.dumps([*events[1:], events[2]]).encode())
    assert status == 200
    assert body == {"accepted": 0, "duplicates": 3, "duplicate_ids": ["e2", "e3", "e3"]}
    assert (await engine.store.counts())["events"] == 3


async def test_rate_limit_per_source() -> None:
    limiter = RateLimiter(2)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("b", now=0.0)
    assert limiter.allow("a", now=0.5)


async def test_rate_limited_requests_get_429(tmp_path: Path) -> None:
    settings = WebhookSettings(enabled=True, secret=SECRET, rate_per_second=1).model_copy(update={"port": 0})
    adapter = WebhookAdapter(settings)
    async with running_engine(tmp_path / "db") as (engine, _sink):
        await adapter.start(engine)
        try:
            async with aiohttp.ClientSession() as session:
                client = Client(session, f"http://127.0.0.1:{adapter.port}/events")
                statuses = [(await client.post(json.dumps(batch(EventFactory(), 1)).encode()))[0] for _ in range(3)]
        finally:
            await adapter.stop()
    assert statuses[0] == 200 and 429 in statuses


async def test_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    from bot.config import ConfigError

    adapter = WebhookAdapter(WebhookSettings(enabled=True))
    async with running_engine(tmp_path / "db") as (engine, _sink):
        with pytest.raises(ConfigError, match=r"webhook\.secret"):
            await adapter.start(engine)


async def test_moderator_events_are_refused_unless_allowed(served: tuple[Client, Engine]) -> None:
    client, engine = served
    f = EventFactory()
    decision = json.loads(dump_event(f.decision("mod", 1, "ban")))
    forged_age = json.loads(dump_event(f.age("kid1", "adult", source="moderator")))
    for body in ([decision], [json.loads(dump_event(f.contact("a", "b"))), forged_age]):
        status, out = await client.post(json.dumps(body).encode())
        assert status == 403 and "allow_moderator_events" in out["error"]
    assert (await engine.store.counts())["events"] == 0
    # A self-declared age is ordinary platform data and still welcome.
    status, _ = await client.post(json.dumps([json.loads(dump_event(f.age("kid1", "minor", source="self")))]).encode())
    assert status == 200
