"""The webhook against a real aiohttp server on 127.0.0.1: signing, replay window, limits, validation, idempotency."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from groomguard.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, RateLimiter, WebhookAdapter, sign
from groomguard.config import WebhookSettings
from groomguard.engine import Engine
from groomguard.events import dump_event
from groomguard.testing import EventFactory, running_engine

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
    from groomguard.config import ConfigError

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


# -- issue 12: bodies in pieces, slow bodies, nesting, rate limits after authentication --------


async def _raw_post(
    port: int, body: bytes, headers: dict[str, str], pieces: list[int], pause: float
) -> tuple[int, dict[str, Any]]:
    """POST over a bare socket, sending the body in `pieces` (byte counts) with `pause` seconds between them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())
    start = 0
    for size in pieces:
        writer.write(body[start : start + size])
        await writer.drain()
        start += size
        await asyncio.sleep(pause)
    writer.write(body[start:])
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, json.loads(raw.split(b"\r\n\r\n", 1)[1])


def _signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SECRET, ts, body), "Content-Type": "application/json"}


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[tuple[WebhookAdapter, Engine]]:
    """A webhook with the default 1 MiB body limit and a short read timeout."""
    settings = WebhookSettings(enabled=True, secret=SECRET, read_timeout_seconds=1.0, unauthenticated_per_second=2)
    adapter = WebhookAdapter(settings.model_copy(update={"port": 0}))
    async with running_engine(tmp_path / "db") as (engine, _sink):
        await adapter.start(engine)
        try:
            yield adapter, engine
        finally:
            await adapter.stop()


def _large_body(n: int = 1500) -> bytes:
    f = EventFactory()
    return json.dumps(
        [json.loads(dump_event(f.message("adult", "x" * 200, conversation="c"))) for _ in range(n)]
    ).encode()


async def test_signed_body_arriving_in_pieces_verifies(big: tuple[WebhookAdapter, Engine]) -> None:
    adapter, engine = big
    body = _large_body()
    assert len(body) > 400_000
    status, out = await _raw_post(adapter.port or 0, body, _signed(body), pieces=[1000], pause=0.3)
    assert status == 200, out
    assert out["accepted"] == 1500
    assert (await engine.store.counts())["events"] == 1500


async def test_signed_chunked_body_verifies(big: tuple[WebhookAdapter, Engine]) -> None:
    adapter, _engine = big
    body = _large_body(400)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7000):
            yield body[start : start + 7000]
            await asyncio.sleep(0.005)

    url = f"http://127.0.0.1:{adapter.port}/events"
    async with aiohttp.ClientSession() as session, session.post(url, data=chunks(), headers=_signed(body)) as r:
        assert r.request_info.headers.get("Transfer-Encoding") == "chunked"
        status, out = r.status, await r.json()
    assert status == 200, out
    assert out["accepted"] == 400


async def test_slow_body_gets_408_not_a_hang(big: tuple[WebhookAdapter, Engine]) -> None:
    adapter, engine = big
    body = json.dumps(batch(EventFactory())).encode()
    started = time.monotonic()
    status, out = await _raw_post(adapter.port or 0, body, _signed(body), pieces=[10], pause=2.5)
    assert status == 408 and "1 s" in out["error"]
    assert time.monotonic() - started < 5
    assert (await engine.store.counts())["events"] == 0


async def test_chunked_body_over_the_limit_is_413(served: tuple[Client, Engine]) -> None:
    client, _engine = served
    body = json.dumps(batch(EventFactory(), 40)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with client.session.post(client.url, data=chunks(), headers=_signed(body)) as r:
        assert r.status == 413 and (await r.json())["field"] == "body"


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
async def test_deeply_nested_body_is_400_not_500(served: tuple[Client, Engine], depth: int) -> None:
    client, _engine = served
    body = (b"[" * depth + b"]" * depth)[:4000]
    status, out = await client.post(body)
    assert status == 400 and out["field"] == "body", out


async def test_deep_nesting_within_the_limit_is_refused_by_depth(served: tuple[Client, Engine]) -> None:
    client, _engine = served
    status, out = await client.post(b"[" * 40 + b"]" * 40)
    assert status == 400 and "deeper than 32" in out["error"]


async def test_far_future_event_is_refused_with_the_reason(served: tuple[Client, Engine]) -> None:
    client, engine = served
    events = batch(EventFactory())
    events[1]["at"] = "9000-01-01T00:00:00Z"
    status, out = await client.post(json.dumps(events).encode())
    assert status == 422 and out["field"] == "[1].at" and "in the future" in out["error"]
    assert (await engine.store.counts())["events"] == 0


async def test_same_event_id_with_other_content_is_a_conflict(served: tuple[Client, Engine]) -> None:
    client, engine = served
    events = batch(EventFactory())
    assert (await client.post(json.dumps(events).encode()))[0] == 200
    changed = dict(events[0], target="someone-else")
    status, out = await client.post(json.dumps([changed, events[1]]).encode())
    assert status == 409
    assert out["conflicting_ids"] == ["e1"] and out["duplicate_ids"] == ["e2"] and out["duplicates"] == 1
    assert engine.stats.rejected.get("webhook_conflict") == 1


async def test_unauthenticated_flood_does_not_starve_a_signed_sender(tmp_path: Path) -> None:
    settings = WebhookSettings(enabled=True, secret=SECRET, rate_per_second=20, unauthenticated_per_second=2)
    adapter = WebhookAdapter(settings.model_copy(update={"port": 0}))
    async with running_engine(tmp_path / "db") as (engine, _sink):
        await adapter.start(engine)
        try:
            async with aiohttp.ClientSession() as session:
                client = Client(session, f"http://127.0.0.1:{adapter.port}/events")
                f = EventFactory()
                good, bad = [], []
                for _ in range(10):
                    for _ in range(12):  # the same address, as behind a reverse proxy
                        bad.append((await client.post(b"[]", secret="wrong"))[0])
                    good.append((await client.post(json.dumps(batch(f, 1)).encode()))[0])
        finally:
            await adapter.stop()
    assert good == [200] * 10, good
    assert set(bad) == {401, 429} and bad.count(429) > bad.count(401)


async def test_signed_sender_is_limited_per_sender(tmp_path: Path) -> None:
    settings = WebhookSettings(enabled=True, secret=SECRET, rate_per_second=2)
    adapter = WebhookAdapter(settings.model_copy(update={"port": 0}))
    async with running_engine(tmp_path / "db") as (engine, _sink):
        await adapter.start(engine)
        try:
            async with aiohttp.ClientSession() as session:
                client = Client(session, f"http://127.0.0.1:{adapter.port}/events")
                first = [
                    (await client.post(json.dumps(batch(EventFactory(platform="a"), 1)).encode()))[0] for _ in range(4)
                ]
                other = (await client.post(json.dumps(batch(EventFactory(platform="b"), 1)).encode()))[0]
        finally:
            await adapter.stop()
    assert first[:2] == [200, 200] and 429 in first[2:]
    assert other == 200, "another sender has its own budget"
