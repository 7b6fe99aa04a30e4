"""End to end on a real Synapse: an adult fans out to minors, reads their messages, grooms one; moderators act.

Everything is real: Synapse runs the GroomGuard module, which posts to a real `WebhookAdapter`
attached to the same engine as the Matrix adapter, and the engine runs the registry's detectors,
including `grooming_language` with the shipped ONNX model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from groomguard.adapters.matrix.adapter import MatrixAdapter
from groomguard.adapters.webhook import WebhookAdapter
from groomguard.app.runtime import build_engine
from groomguard.config import MatrixSettings, WebhookSettings
from groomguard.engine import Engine, build_detectors
from groomguard.events import BaseEvent, parse_event
from groomguard.testing import make_settings
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)
from pydantic import SecretStr

from tests.matrix.test_synapse_module import SECRET
from tests.synapse.homeserver import Homeserver, free_port, missing_reason, start_homeserver

pytestmark = pytest.mark.synapse

COMMUNITY = "localhost"
MINORS = 8

#: A synthetic grooming conversation (written for this test) in the short, lower-case register of
#: chat: flattery, age/school/parents probing, secrecy, "delete this", moving to Snapchat, a photo.
GROOMING_CONVERSATION = (
    "hey ur really good at this game",
    "u seem so mature for ur age",
    "how old r u? what school do u go to",
    "r ur parents home rn",
    "u can tell me anything, i get u better than they do",
    "dont tell anyone we talk ok its our secret",
    "delete this after u read it",
    "do u have snap? add me there its more private",
    "send me a pic of u, just for me",
    "we could meet up sometime, i can pick u up",
)


class RecordingWebhook(WebhookAdapter):
    """The real webhook ingest, keeping a copy of every batch it validated (for assertions)."""

    def __init__(self, settings: WebhookSettings, record: list[BaseEvent]) -> None:
        super().__init__(settings)
        self.record = record

    async def _store(self, events: list[BaseEvent], source: str) -> web.Response:
        self.record.extend(events)
        return await super()._store(events, source)


@pytest.fixture(scope="module")
def webhook_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def homeserver(webhook_port: int) -> Iterator[Homeserver]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    module = {
        "module": "groomguard.adapters.matrix.synapse_module.GroomGuardModule",
        "config": {
            "webhook_url": f"http://127.0.0.1:{webhook_port}/events",
            "secret": SECRET,
            "community": COMMUNITY,
            "flush_interval_ms": 50,
            "timeout_s": 2.0,
            "max_backoff_s": 0.5,
        },
    }
    server = start_homeserver(modules=[module])
    try:
        yield server
    finally:
        server.stop()


def expect(reply: Any, kind: type) -> Any:
    assert isinstance(reply, kind), f"expected {kind.__name__}, got {reply!r}"
    return reply


async def wait_for(predicate: Callable[[], Any], what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Scenario:
    """The people, rooms and running bot of one test; the bot (Matrix adapter + webhook ingest + engine)
    can be restarted with the same database."""

    def __init__(self, server: Homeserver, db: Path, webhook_port: int) -> None:
        self.server, self.db, self.webhook_port = server, db, webhook_port
        self.clients: list[AsyncClient] = []
        self.engine: Engine | None = None
        self.adapter: MatrixAdapter | None = None
        self.webhook: RecordingWebhook | None = None
        self.reported: list[BaseEvent] = []

    def user(self, name: str) -> AsyncClient:
        user_id, token = self.server.register(name)
        client = AsyncClient(self.server.url, user_id, config=AsyncClientConfig(encryption_enabled=False))
        client.access_token, client.user_id = token, user_id
        self.clients.append(client)
        return client

    async def start_bot(self, settings: MatrixSettings) -> MatrixAdapter:
        engine_settings = make_settings(self.db)
        hook_settings = WebhookSettings(
            enabled=True, host="127.0.0.1", port=self.webhook_port, secret=SecretStr(SECRET)
        )
        adapter = MatrixAdapter(settings)
        webhook = RecordingWebhook(hook_settings, self.reported)
        engine = build_engine(engine_settings, [adapter, webhook], detectors=build_detectors(engine_settings))
        await engine.start()
        await webhook.start(engine)
        await adapter.start(engine)
        assert adapter.ready
        self.engine, self.adapter, self.webhook = engine, adapter, webhook
        return adapter

    async def stop_bot(self) -> None:
        assert self.engine is not None and self.adapter is not None and self.webhook is not None
        await self.webhook.stop()  # the module keeps what it could not post and retries with back-off
        await self.engine.drain()
        await self.adapter.stop()
        await self.engine.stop()

    async def events_of(self, kind: str) -> list[dict[str, Any]]:
        assert self.engine is not None
        db = self.engine.store.db  # type: ignore[attr-defined]
        async with db.execute("SELECT body FROM events WHERE type = ?", (kind,)) as cur:
            return [parse_event(row[0]).model_dump() for row in await cur.fetchall()]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


PRIVATE_STATE = [
    {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}},
    {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
]


async def room(owner: AsyncClient, name: str, power: dict[str, int], public: bool = True, **kw: Any) -> str:
    reply = await owner.room_create(
        name=name or None,
        visibility=RoomVisibility.private,
        preset=RoomPreset.public_chat if public else RoomPreset.private_chat,
        power_level_override={"users": power, "invite": 0},
        # A private room reads like a mod room must: history for members since their invite, no guests.
        initial_state=[] if public else PRIVATE_STATE,
        **kw,
    )
    return str(expect(reply, RoomCreateResponse).room_id)


async def timeline(client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    reply = expect(await client.room_messages(room_id, start=None, limit=200), RoomMessagesResponse)
    return [e.source for e in reversed(reply.chunk)]


def grooming_edit(event: dict[str, Any], bot: str) -> bool:
    content = event.get("content") or {}
    return (
        event.get("sender") == bot
        and content.get("m.relates_to", {}).get("rel_type") == "m.replace"
        and "Grooming language" in content.get("body", "")
    )


async def watch(client: AsyncClient, room_id: str, into: list[tuple[float, dict[str, Any]]]) -> None:
    """Long-poll `client`'s sync forever, recording when each event of `room_id` arrived."""
    while True:
        reply = await client.sync(timeout=1000)
        now = time.perf_counter()
        joined = reply.rooms.join.get(room_id) if isinstance(reply, SyncResponse) else None
        if joined is not None:
            into.extend((now, e.source) for e in joined.timeline.events)


def cards_in(events: list[dict[str, Any]], bot: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(original cards, m.replace edits) the bot posted."""
    mine = [e for e in events if e["sender"] == bot and e["type"] == "m.room.message"]
    edits = [e for e in mine if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"]
    originals = [e for e in mine if e not in edits and e["content"]["body"].startswith("🚨")]
    return originals, edits


async def react(client: AsyncClient, room_id: str, event_id: str, key: str) -> str:
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    return str(expect(await client.room_send(room_id, "m.reaction", content), RoomSendResponse).event_id)


async def sync_until(
    client: AsyncClient, room_id: str, match: Callable[[dict[str, Any]], bool], limit_s: float = 5
) -> float:
    """Long-poll the client's own sync until an event in `room_id` matches; returns when it arrived."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        reply = expect(await client.sync(timeout=1000), SyncResponse)
        joined = reply.rooms.join.get(room_id)
        if joined and any(match(e.source) for e in joined.timeline.events):
            return time.perf_counter()
    raise AssertionError(f"no matching event in {room_id} within {limit_s}s")


async def test_grooming_scenario_end_to_end(homeserver: Homeserver, webhook_port: int, tmp_path: Path) -> None:
    started = time.monotonic()
    s = Scenario(homeserver, tmp_path / "groomguard.db", webhook_port)
    try:
        await _scenario(s)
    finally:
        if s.adapter is not None and s.adapter.ready:
            await s.stop_bot()
        await s.close()
    print(f"\nmatrix e2e scenario took {time.monotonic() - started:.1f}s")


async def _scenario(s: Scenario) -> None:
    bot_id, bot_token = s.server.register("gg_bot")
    mod, junior, adult, adult2 = (s.user(n) for n in ("gg_mod", "gg_junior", "gg_adult", "gg_adult2"))
    kids = [s.user(f"gg_kid{i}") for i in range(MINORS)]
    bot_power = {bot_id: 100}  # the moderator created the rooms: in room v12 creators outrank everyone
    mod_room = await room(mod, "moderators", bot_power, public=False, invite=[bot_id])
    teens = await room(mod, "teens", bot_power, invite=[bot_id])
    adults = await room(mod, "adults", bot_power, invite=[bot_id])
    games = await room(mod, "games", bot_power, invite=[bot_id])
    arcade = await room(mod, "arcade", bot_power, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True,
        homeserver=s.server.url,
        user_id=bot_id,
        access_token=bot_token,
        mod_room=mod_room,
        protected_rooms=[games, arcade],
        minor_rooms=[teens],
        adult_rooms=[adults],
        sync_timeout_ms=10_000,
    )
    bot = await s.start_bot(settings)
    assert bot.mod_room_problem is None

    # Ages come from room membership: the kids are in "teens", the adults in "adults".
    for kid in kids:
        expect(await kid.join(teens), JoinResponse)
    for grown in (adult, adult2):
        expect(await grown.join(adults), JoinResponse)
        expect(await grown.join(games), JoinResponse)
        expect(await grown.join(arcade), JoinResponse)
    await wait_for(
        lambda: all(
            (acc := s.engine.state.accounts.get((COMMUNITY, k.user_id))) is not None and acc.is_minor  # type: ignore[union-attr]
            for k in kids
        ),
        "the kids' age bands",
    )

    # The adult invites every kid into "games": three refuse, the rest join.
    mod.next_batch = expect(await mod.sync(timeout=0), SyncResponse).next_batch
    sent_at = 0.0
    for i, kid in enumerate(kids):
        sent_at = time.perf_counter()
        expect(await adult.room_invite(games, kid.user_id), RoomInviteResponse)
        if i < 3:
            expect(await kid.room_leave(games), RoomLeaveResponse)
        else:
            expect(await kid.join(games), JoinResponse)
        if i == 6:  # fan_out reaches the alert threshold on the 7th minor
            arrived = await sync_until(mod, mod_room, lambda e: e["sender"] == bot_id)
            print(f"\ninvite-to-alert latency: {(arrived - sent_at) * 1000:.0f} ms")
    # A second adult does the same in "arcade": a second, separate case.
    for kid in kids[:7]:
        expect(await adult2.room_invite(arcade, kid.user_id), RoomInviteResponse)
        expect(await kid.join(arcade), JoinResponse)

    # Invites the bot cannot see (private rooms without it): only the Synapse module reports them,
    # through the webhook ingest. One is refused, one (a DM) accepted.
    hidden = await room(adult, "hidden", {}, public=False, invite=[kids[0].user_id])
    expect(await kids[0].room_leave(hidden), RoomLeaveResponse)
    hidden_dm = await room(adult, "", {}, public=False, is_direct=True, invite=[kids[1].user_id])
    expect(await kids[1].join(hidden_dm), JoinResponse)

    # Restart mid-scenario: while the bot is down the kids post and the adult reads every post.
    await s.stop_bot()
    posts = []
    for kid in kids[3:]:
        posts.append(
            expect(
                await kid.room_send(games, "m.room.message", {"msgtype": "m.text", "body": "gg!"}), RoomSendResponse
            ).event_id
        )
    for event_id in posts:
        await adult.update_receipt_marker(games, event_id)
    bot = await s.start_bot(settings)
    await wait_for(lambda: s.engine.state.accounts.get((COMMUNITY, adult.user_id)) is not None, "the restarted bot")  # type: ignore[union-attr]

    async def views() -> list[dict[str, Any]]:
        return [v for v in await s.events_of("content_viewed") if v["viewer"] == adult.user_id]

    for _ in range(200):
        if len(await views()) >= len(posts):
            break
        await asyncio.sleep(0.05)
    assert sorted(v["content_id"] for v in await views()) == sorted(posts)  # nothing lost, nothing twice
    sent = [m for m in await s.events_of("message_sent") if m["conversation"] == games]
    assert sorted(m["message_id"] for m in sent) == sorted(posts)

    # The grooming conversation: a DM the adult opens with one kid (the community requires the bot in DMs).
    child = kids[3]
    dm = await room(adult, "", {}, public=False, is_direct=True, invite=[child.user_id, bot_id])
    expect(await child.join(dm), JoinResponse)
    await wait_for(
        lambda: bot.translator.rooms.get(dm) and bot.translator.rooms[dm].members.get(bot_id) == "join", "bot in DM"
    )
    [adult_case] = [c for c in s.engine.cases.by_id.values() if c.suspect == adult.user_id]  # type: ignore[union-attr]
    assert "grooming_language" not in adult_case.reasons
    mod.next_batch = expect(await mod.sync(timeout=0), SyncResponse).next_batch
    arrivals: list[tuple[float, dict[str, Any]]] = []
    watcher = asyncio.create_task(watch(mod, mod_room, arrivals))
    sent_at: list[float] = []
    trigger: int | None = None
    try:
        for i, text in enumerate(GROOMING_CONVERSATION):
            sent_at.append(time.perf_counter())
            reply = await adult.room_send(dm, "m.room.message", {"msgtype": "m.text", "body": text})
            event_id = expect(reply, RoomSendResponse).event_id
            # Wait until this message is stored and judged, to know whether it is the one that put
            # grooming on the case (latency is measured from that message's send).
            for _ in range(250):
                if event_id in {m["message_id"] for m in await s.events_of("message_sent")}:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"message {i} of the conversation was never stored")
            # Stored is not yet judged: the engine stores, then runs detectors, under its writer lock.
            async with s.engine._lock:  # type: ignore[union-attr]
                pass
            if trigger is None and "grooming_language" in adult_case.reasons:
                trigger = i
        score = adult_case.reasons.get("grooming_language", {}).get("score", 0.0)
        assert trigger is not None, "the real grooming model did not flag the conversation"
        assert score >= 0.9, f"grooming finding stayed at child-notice level ({score:.2f})"
        await wait_for(lambda: any(grooming_edit(e, bot_id) for _, e in arrivals), "the grooming card edit")
    finally:
        watcher.cancel()
    arrived = min(t for t, e in arrivals if grooming_edit(e, bot_id))
    latency_ms = (arrived - sent_at[trigger]) * 1000
    print(f"\nreal model flagged message {trigger + 1} of {len(GROOMING_CONVERSATION)} (case score {score:.2f})")
    print(f"message-to-alert latency (card edit seen by a moderator): {latency_ms:.0f} ms")
    assert latency_ms < 1000

    # One card per case, updated in place, with the right reasons.
    await s.engine.drain()  # type: ignore[union-attr]
    originals, edits = cards_in(await timeline(mod, mod_room), bot_id)
    suspects = sorted(e["content"]["body"].splitlines()[0].split(": ", 1)[1] for e in originals)
    assert suspects == sorted([adult.user_id, adult2.user_id])
    card = next(e for e in originals if adult.user_id in e["content"]["body"].splitlines()[0])
    card_edits = [e for e in edits if e["content"]["m.relates_to"]["event_id"] == card["event_id"]]
    assert card_edits, "the card was edited in place"
    latest = card_edits[-1]["content"]["m.new_content"]["body"]
    assert "Contacting many children" in latest and "Grooming language" in latest
    case_id = int(card["content"]["body"].split("#", 1)[1].split(":", 1)[0])

    # The child gets a kind DM from the bot; the adult sees nothing of it.
    invites = expect(await child.sync(timeout=3000), SyncResponse).rooms.invite
    notice_room = next(
        r for r, info in invites.items() if any(getattr(e, "sender", None) == bot_id for e in info.invite_state)
    )
    expect(await child.join(notice_room), JoinResponse)
    notice = [e for e in await timeline(child, notice_room) if e["type"] == "m.room.message" and e["sender"] == bot_id]
    # The first notice, then one each for the photo request and the meeting (new serious stages inside
    # the 24 h limit), never more than notices.max_per_child_per_day; none names the adult.
    bodies = [e["content"]["body"] for e in notice]
    assert len(bodies) == 3 and all(adult.user_id not in b for b in bodies)
    assert "photos or videos" in bodies[1] and "meeting up" in bodies[2]

    # A non-moderator in the mod room reacts: nothing changes, the attempt is audited.
    expect(await mod.room_invite(mod_room, junior.user_id), RoomInviteResponse)
    expect(await junior.join(mod_room), JoinResponse)
    await react(junior, mod_room, card["event_id"], "❌")
    await wait_for(lambda: bot.mod_room_problem is not None, "the bot to notice a non-moderator in the mod room")
    await asyncio.sleep(0.3)
    assert s.engine.cases.by_id[case_id].status == "open"  # type: ignore[union-attr]
    async with s.engine.store.db.execute(
        "SELECT actor FROM audit WHERE action = 'matrix_ignored_non_moderator'"
    ) as cur:  # type: ignore[union-attr]
        assert junior.user_id in [r[0] for r in await cur.fetchall()]
    expect(await mod.room_kick(mod_room, junior.user_id), RoomKickResponse)
    await wait_for(lambda: bot.mod_room_problem is None, "the mod room to be moderators-only again")

    # Moderators: ❌ dismisses the second adult's case; ✅ confirms the first; 🔨 + ✅ bans.
    card2 = next(e for e in originals if adult2.user_id in e["content"]["body"].splitlines()[0])
    case2 = int(card2["content"]["body"].split("#", 1)[1].split(":", 1)[0])
    await react(mod, mod_room, card2["event_id"], "❌")
    await react(mod, mod_room, card["event_id"], "✅")
    await wait_for(lambda: s.engine.cases.by_id[case2].status == "dismissed", "dismissal")  # type: ignore[union-attr]
    await wait_for(lambda: s.engine.cases.by_id[case_id].status == "confirmed", "confirmation")  # type: ignore[union-attr]
    await react(mod, mod_room, card["event_id"], "🔨")
    prompts = [
        e
        for e in reversed(await timeline(mod, mod_room))
        if e["sender"] == bot_id and "to THIS message" in e["content"].get("body", "")
    ]
    for _ in range(100):
        if prompts:
            break
        await asyncio.sleep(0.05)
        prompts = [
            e
            for e in reversed(await timeline(mod, mod_room))
            if e["sender"] == bot_id and "to THIS message" in e["content"].get("body", "")
        ]
    [prompt] = prompts
    assert s.engine.cases.by_id[case_id].status == "confirmed"  # type: ignore[union-attr]  # 🔨 alone bans nobody
    await react(mod, mod_room, prompt["event_id"], "✅")
    await wait_for(lambda: s.engine.cases.by_id[case_id].status == "banned", "ban")  # type: ignore[union-attr]
    await s.engine.drain()  # type: ignore[union-attr]
    for room_id in (games, arcade, teens, adults):
        # The case turns "banned" in memory before its batch commits and the ban reaches the outbox, so a
        # drain right after can return before the ban is sent: wait (bounded) for the homeserver to show it.
        for _ in range(200):
            state = expect(
                await mod.room_get_state_event(room_id, "m.room.member", adult.user_id), RoomGetStateEventResponse
            )
            if state.content["membership"] == "ban":
                break
            await asyncio.sleep(0.05)
        assert state.content["membership"] == "ban", room_id

    # The suspect never saw a read receipt or reaction from the bot.
    adult_view = expect(await adult.sync(timeout=0, full_state=True), SyncResponse)
    for joined in adult_view.rooms.join.values():
        for ephemeral in joined.ephemeral:
            for receipt in getattr(ephemeral, "receipts", []):
                assert receipt.user_id != bot_id
        assert not [e for e in joined.timeline.events if e.source["type"] == "m.reaction" and e.sender == bot_id]

    # Module → webhook → engine: the hidden invites are stored events, the accepted one a contact edge.
    hidden_ids = (f"{hidden}|{kids[0].user_id}", f"{hidden_dm}|{kids[1].user_id}")

    async def stored_for(request_id: str) -> list[tuple[str, str]]:
        rows = [*await s.events_of("contact_requested"), *await s.events_of("contact_answered")]
        return sorted((r["type"], r.get("kind") or r.get("answer")) for r in rows if r["request_id"] == request_id)

    for _ in range(250):
        if [len(await stored_for(r)) for r in hidden_ids] == [2, 2]:
            break
        await asyncio.sleep(0.02)
    assert await stored_for(hidden_ids[0]) == [("contact_answered", "rejected"), ("contact_requested", "invite")]
    assert await stored_for(hidden_ids[1]) == [("contact_answered", "accepted"), ("contact_requested", "dm")]
    contacts = await s.engine.state.accepted_contacts(COMMUNITY, adult.user_id)  # type: ignore[union-attr]
    assert kids[1].user_id in contacts and kids[0].user_id not in contacts
    assert all(e.key.startswith("matrix:$") for e in s.reported)

    # The module also reported every invite the bot saw itself: same Matrix event ids, stored once.
    seen_by_bot = [
        e
        for e in s.reported
        if e.request_id.split("|")[0] in (games, arcade, dm) and bot_id not in e.request_id  # type: ignore[attr-defined]
    ]
    assert len(seen_by_bot) >= 2 * MINORS + 7
    requested = [r["request_id"] for r in await s.events_of("contact_requested")]
    assert len(requested) == len(set(requested)), "an invite was stored twice"

    # Nothing duplicated on the cards either, after the restart.
    originals_after, _ = cards_in(await timeline(mod, mod_room), bot_id)
    assert len(originals_after) == 2
