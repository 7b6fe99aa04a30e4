"""The Matrix adapter's moderator commands, DM self-declaration, mute, invite expiry, mod-room refusal and
reconnect, against the session's real Synapse (no module). Pure parsing is tested without a homeserver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from groomguard.actions import ModAlert
from groomguard.adapters.matrix import cards
from groomguard.adapters.matrix.adapter import MatrixAdapter
from groomguard.adapters.matrix.commands import Command, parse, reaction_meaning
from groomguard.app.runtime import build_engine
from groomguard.config import MatrixSettings
from groomguard.detectors.rejections import PENDING_REQUESTS
from groomguard.engine import Engine
from groomguard.events import AgeBand, AgeSource, BaseEvent
from groomguard.testing import EventFactory, make_settings
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)

from tests.synapse.homeserver import Homeserver, free_port

COMMUNITY = "localhost"

# --- parsing: no homeserver needed ------------------------------------------------------


def test_parse_commands() -> None:
    assert parse("!gg") == Command("help")
    assert parse("!GG help") == Command("help")
    assert parse("!gg cases") == Command("cases")
    assert parse("!gg case #12") == Command("case", case_id=12)
    assert parse("!gg case twelve").error == "usage: !gg case ID"
    assert parse("!gg age @a:x minor") == Command("age", user="@a:x", band=AgeBand.MINOR)
    assert parse("!gg age @a:x ADULT").band is AgeBand.ADULT
    assert parse("!gg age a minor").error == "usage: !gg age @user:server minor|adult"
    assert parse("!gg age 13") == Command("self_age", age=13, band=AgeBand.MINOR)
    assert parse("!gg age 18").band is AgeBand.ADULT
    assert parse("!gg age 3").error == "age must be between 5 and 120"
    assert parse("!gg forget @a:x") == Command("forget", user="@a:x")
    assert parse("!gg forget everyone").error
    assert parse("!gg dance").error == "unknown command 'dance'" and parse("!gg dance").name == "help"
    assert parse("hello").name == "none"


def test_reaction_meanings_ignore_variation_selectors() -> None:
    assert reaction_meaning("✅") == "confirm" and reaction_meaning("⬆️") == "escalate"
    assert reaction_meaning("🔇") == "mute" and reaction_meaning("🔨") == "ban"
    assert reaction_meaning("👍") is None


# --- against a real Synapse -------------------------------------------------------------


def expect(reply: Any, kind: type) -> Any:
    assert isinstance(reply, kind), f"expected {kind.__name__}, got {reply!r}"
    return reply


async def until(predicate: Callable[[], Any], what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Bench:
    """Users, a moderators' room, one protected room, and a running bot on its own database."""

    def __init__(self, server: Homeserver, db: Path) -> None:
        self.server, self.db = server, db
        self.clients: list[AsyncClient] = []
        self.running: list[tuple[Engine, MatrixAdapter]] = []

    def user(self, name: str) -> AsyncClient:
        user_id, token = self.server.register(name)
        client = AsyncClient(self.server.url, user_id, config=AsyncClientConfig(encryption_enabled=False))
        client.access_token, client.user_id = token, user_id
        self.clients.append(client)
        return client

    async def start(self, settings: MatrixSettings, wait_s: float = 15.0) -> tuple[Engine, MatrixAdapter]:
        adapter = MatrixAdapter(settings)
        engine = build_engine(make_settings(self.db), [adapter], detectors=None)
        await engine.start()
        self.running.append((engine, adapter))
        await adapter.start(engine, wait_s=wait_s)
        return engine, adapter

    async def close(self) -> None:
        for engine, adapter in self.running:
            with contextlib.suppress(Exception):
                await engine.drain()
            await adapter.stop()
            await engine.stop()
        for client in self.clients:
            await client.close()


@pytest.fixture
async def bench(synapse: Homeserver, tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(synapse, tmp_path / "groomguard.db")
    try:
        yield b
    finally:
        await b.close()


PRIVATE_STATE = [
    {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}},
    {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
]


async def room(owner: AsyncClient, power: dict[str, int], public: bool = False, **kw: Any) -> str:
    reply = await owner.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.public_chat if public else RoomPreset.private_chat,
        power_level_override={"users": power, "invite": 0},
        # A private room reads like a mod room must: history for members since their invite, no guests.
        initial_state=[] if public else PRIVATE_STATE,
        **kw,
    )
    return str(expect(reply, RoomCreateResponse).room_id)


async def said(client: AsyncClient, room_id: str, text: str, bot: str, reply_has: str) -> str:
    """Send `text` in `room_id`, then return the body of the bot's next message there containing `reply_has`."""
    client.next_batch = expect(await client.sync(timeout=0), SyncResponse).next_batch
    expect(await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text}), RoomSendResponse)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = expect(await client.sync(timeout=1000), SyncResponse)
        joined = reply.rooms.join.get(room_id)
        for event in joined.timeline.events if joined else []:
            body = event.source.get("content", {}).get("body", "")
            if event.sender == bot and reply_has in body:
                return str(body)
    raise AssertionError(f"no reply containing {reply_has!r} to {text!r}")


def fan_out(adult: str, minors: int = 8) -> list[BaseEvent]:
    """Synthetic Matrix events: `minors` declared minors, each sent an invite by `adult` (opens a case)."""
    f = EventFactory(community=COMMUNITY, platform="matrix", start=datetime.now(UTC) - timedelta(minutes=30))
    kids = [f"@synthetic_kid{i}:localhost" for i in range(minors)]
    events: list[BaseEvent] = [f.adult(adult), *(f.minor(k) for k in kids)]
    events += [f.contact(adult, k, kind="invite", request_id=f"!r:localhost|{k}") for k in kids]
    return events


async def audited(engine: Engine, action: str) -> list[str]:
    async with engine.store.db.execute("SELECT actor FROM audit WHERE action = ?", (action,)) as cur:  # type: ignore[attr-defined]
        return [r[0] for r in await cur.fetchall()]


@pytest.mark.synapse
async def test_commands_self_declaration_mute_and_expiry(bench: Bench) -> None:
    bot_id, bot_token = bench.server.register("cmd_bot")
    mod, junior, adult, kid, kid2 = (
        bench.user(n) for n in ("cmd_mod", "cmd_junior", "cmd_adult", "cmd_kid", "cmd_kid2")
    )
    mod_room = await room(mod, {bot_id: 100}, invite=[bot_id])
    games = await room(mod, {bot_id: 100}, public=True, invite=[bot_id])
    expect(await adult.join(games), JoinResponse)
    settings = MatrixSettings(
        enabled=True,
        homeserver=bench.server.url,
        user_id=bot_id,
        access_token=bot_token,
        mod_room=mod_room,
        protected_rooms=[games],
        sync_timeout_ms=10_000,
        mute_minutes=5,
    )
    engine, bot = await bench.start(settings)
    assert bot.mod_room_problem is None

    # A case, so there is a card to react to and something to list.
    await engine.ingest(fan_out(adult.user_id))
    await until(lambda: any(c.suspect == adult.user_id for c in engine.cases.by_id.values()), "a case")
    [case] = [c for c in engine.cases.by_id.values() if c.suspect == adult.user_id]
    await engine.drain()
    card = await bot.mstore.card(COMMUNITY, case.id)  # type: ignore[union-attr]
    assert card is not None

    listed = await said(mod, mod_room, "!gg cases", bot_id, "Cases (highest risk now first)")
    assert f"#{case.id} {adult.user_id} · open" in listed
    detail = await said(mod, mod_room, f"!gg case {case.id}", bot_id, f"Case #{case.id}:")
    assert adult.user_id in detail and "Contacting many children" in detail
    assert await said(mod, mod_room, "!gg case 9999", bot_id, "No case") == "No case #9999."
    assert cards.HELP_TEXT.splitlines()[1] in await said(mod, mod_room, "!gg help", bot_id, "GroomGuard commands")
    assert "unknown command" in await said(mod, mod_room, "!gg dance", bot_id, "unknown command")

    # A moderator sets an age band, both ways.
    def band(user: str) -> AgeBand | None:
        acc = engine.state.accounts.get((COMMUNITY, user))
        return acc.band if acc is not None else None

    await said(mod, mod_room, f"!gg age {kid.user_id} minor", bot_id, "Noted")
    assert band(kid.user_id) is AgeBand.MINOR
    await said(mod, mod_room, f"!gg age {kid.user_id} adult", bot_id, "Noted")
    assert band(kid.user_id) is AgeBand.ADULT

    # A non-moderator in the mod room: ignored (no reply, no change) and audited.
    expect(await mod.room_invite(mod_room, junior.user_id), RoomInviteResponse)
    expect(await junior.join(mod_room), JoinResponse)
    junior_cmd = await junior.room_send(
        mod_room, "m.room.message", {"msgtype": "m.text", "body": f"!gg age {kid.user_id} minor"}
    )
    expect(junior_cmd, RoomSendResponse)
    for _ in range(250):
        if junior.user_id in await audited(engine, "matrix_ignored_non_moderator"):
            break
        await asyncio.sleep(0.02)
    assert junior.user_id in await audited(engine, "matrix_ignored_non_moderator")
    assert band(kid.user_id) is AgeBand.ADULT
    expect(await mod.room_kick(mod_room, junior.user_id), RoomKickResponse)
    await until(lambda: bot.mod_room_problem is None, "the mod room to be moderators-only again")

    # Forget: the engine's memory and store of the account are erased.
    erased = await said(mod, mod_room, f"!gg forget {kid.user_id}", bot_id, "Erased")
    assert erased.endswith(f"stored records about {kid.user_id}.") and not erased.startswith("Erased 0 ")
    assert (COMMUNITY, kid.user_id) not in engine.state.accounts

    # A child declares their own age to the bot in a DM (the bot accepts the DM invite itself).
    dm = await room(kid2, {}, is_direct=True, invite=[bot_id])
    await until(lambda: bot.translator.rooms.get(dm) and bot.translator.rooms[dm].members.get(bot_id) == "join", "DM")
    assert "Thank you" in await said(kid2, dm, "!gg age 13", bot_id, "Thank you")
    acc = engine.state.accounts[(COMMUNITY, kid2.user_id)]
    assert acc.band is AgeBand.MINOR
    async with engine.store.db.execute("SELECT body FROM events WHERE type = 'age_declared'") as cur:  # type: ignore[attr-defined]
        sources = [r[0] for r in await cur.fetchall() if kid2.user_id in r[0]]
    assert len(sources) == 1 and f'"source":"{AgeSource.SELF.value}"' in sources[0].replace(" ", "")
    assert "!gg age 13" in await said(kid2, dm, "!gg help", bot_id, "!gg age 13")  # DM help

    # An invite to a child left pending in a watched room: the adapter only reports it; the engine expires it.
    expect(await adult.room_invite(games, kid2.user_id), RoomInviteResponse)
    request = f"{games}|{kid2.user_id}"

    async def pending() -> list[str]:
        return [r.key for r in await engine.state.memory_book.rows(PENDING_REQUESTS)]

    for _ in range(250):
        if f"{adult.user_id}|{kid2.user_id}|{request}" in await pending():
            break
        await asyncio.sleep(0.02)
    assert f"{adult.user_id}|{kid2.user_id}|{request}" in await pending()

    # 🔇 on the card: the suspect's power level in the protected room drops below events_default.
    mod.next_batch = expect(await mod.sync(timeout=0), SyncResponse).next_batch
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": card.event_id, "key": "🔇"}}
    expect(await mod.room_send(mod_room, "m.reaction", content), RoomSendResponse)

    async def level() -> int | None:
        state = await mod.room_get_state_event(games, "m.room.power_levels")
        return expect(state, RoomGetStateEventResponse).content.get("users", {}).get(adult.user_id)

    for _ in range(250):
        if await level() == -1:
            break
        await asyncio.sleep(0.02)
    assert await level() == -1
    assert engine.cases.by_id[case.id].status != "open"
    await engine.drain()

    # Time passes (a day and more): the mute is lifted and the invite has expired.
    later = datetime.now(UTC) + timedelta(hours=engine.settings.detectors.rejections.expire_after_hours + 1)
    engine.clock = lambda: later  # the engine refuses events dated ahead of its clock
    await bot.housekeeping(now=later)
    assert await level() is None
    assert await engine.expire_requests() >= 1  # the invite, and the fan_out requests to minors left unanswered
    async with engine.store.db.execute("SELECT body FROM events WHERE type = 'contact_answered'") as cur:  # type: ignore[attr-defined]
        answers = [r[0] for r in await cur.fetchall() if request in r[0]]
    assert len(answers) == 1 and '"expired"' in answers[0]
    async with engine.store.db.execute("SELECT count(*) FROM events WHERE type = 'contact_answered'") as cur:  # type: ignore[attr-defined]
        answered = (await cur.fetchone())[0]  # type: ignore[index]
    assert await engine.expire_requests() == 0  # nothing is expired twice
    assert await pending() == []
    async with engine.store.db.execute("SELECT count(*) FROM events WHERE type = 'contact_answered'") as cur:  # type: ignore[attr-defined]
        assert (await cur.fetchone())[0] == answered  # type: ignore[index]


@pytest.mark.synapse
async def test_public_mod_room_is_refused_with_a_reason(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="groomguard.adapters.matrix.adapter")
    bot_id, bot_token = bench.server.register("public_bot")
    mod, adult = bench.user("public_mod"), bench.user("public_adult")
    mod_room = await room(mod, {bot_id: 100}, public=True, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True, homeserver=bench.server.url, user_id=bot_id, access_token=bot_token, mod_room=mod_room
    )
    engine, bot = await bench.start(settings)
    reason = "its join rule is 'public'; make the room invite-only"
    assert bot.mod_room_problem == reason
    assert f"refusing to post alerts into mod room {mod_room}: {reason}" in caplog.text

    # An alert for this mod room stays in the outbox; nothing is posted.
    await engine.ingest(fan_out(adult.user_id))
    await engine.drain()
    pending = [a for a in await engine.store.pending_actions() if isinstance(a, ModAlert)]
    assert pending and pending[0].suspect == adult.user_id
    messages = await mod.room_messages(mod_room, start=None, limit=50)
    assert not [e for e in messages.chunk if e.sender == bot_id and e.source["type"] == "m.room.message"]  # type: ignore[union-attr]


class Proxy:
    """A TCP forwarder in front of Synapse that can be switched off and on again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


@pytest.mark.synapse
async def test_reconnects_with_backoff_when_the_homeserver_goes_away(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="groomguard.adapters.matrix.adapter")
    bot_id, bot_token = bench.server.register("reconnect_bot")
    mod, member = bench.user("reconnect_mod"), bench.user("reconnect_member")
    lounge = await room(mod, {bot_id: 100}, public=True, invite=[bot_id])
    expect(await member.join(lounge), JoinResponse)
    proxy = Proxy(int(bench.server.url.rsplit(":", 1)[1]))
    await proxy.start()
    settings = MatrixSettings(
        enabled=True,
        homeserver=f"http://127.0.0.1:{proxy.port}",
        user_id=bot_id,
        access_token=bot_token,
        protected_rooms=[lounge],
        sync_timeout_ms=1000,
        max_backoff_s=1.0,
    )
    engine, bot = await bench.start(settings)
    assert bot.ready

    await proxy.stop()  # the homeserver goes away mid long-poll
    failures = lambda: [r.getMessage() for r in caplog.records if "matrix sync failed" in r.getMessage()]  # noqa: E731
    await until(lambda: len(failures()) >= 3, "three failed syncs", limit_s=10)
    assert "retry 1 in 0.5s" in failures()[0]
    assert "retry 2 in 1.0s" in failures()[1] and "retry 3 in 1.0s" in failures()[2]  # capped at max_backoff_s
    # While it is down, someone posts: nothing is lost once the bot is back.
    sent = await member.room_send(lounge, "m.room.message", {"msgtype": "m.text", "body": "anyone here?"})
    event_id = expect(sent, RoomSendResponse).event_id

    await proxy.start()
    back = "matrix homeserver reachable again after"
    await until(lambda: back in caplog.text, "the reconnect log line", limit_s=10)
    async with engine.store.db.execute("SELECT count(*) FROM events WHERE type = 'message_sent'") as cur:  # type: ignore[attr-defined]
        assert (await cur.fetchone())[0] == 1  # type: ignore[index]
    async with engine.store.db.execute("SELECT body FROM events WHERE type = 'message_sent'") as cur:  # type: ignore[attr-defined]
        assert event_id in (await cur.fetchone())[0]  # type: ignore[index]
    await proxy.stop()


@pytest.mark.parametrize(
    ("event_type", "content", "reason"),
    [
        ("m.room.history_visibility", {"history_visibility": "shared"}, "its history visibility is 'shared'"),
        ("m.room.history_visibility", {"history_visibility": "world_readable"}, "is 'world_readable'"),
        ("m.room.guest_access", {"guest_access": "can_join"}, "guest access is on ('can_join')"),
    ],
    ids=["shared-history", "world-readable", "guests"],
)
async def test_mod_room_with_readable_history_or_guests_is_refused(
    bench: Bench, event_type: str, content: dict[str, str], reason: str, request: pytest.FixtureRequest
) -> None:
    """Issue 12: a member invited later must not read past cards, and guests must not join."""
    tag = request.node.callspec.id.replace("-", "_")
    bot_id, bot_token = bench.server.register(f"hist_bot_{tag}")
    mod = bench.user(f"hist_mod_{tag}")
    mod_room = await room(mod, {bot_id: 100}, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True, homeserver=bench.server.url, user_id=bot_id, access_token=bot_token, mod_room=mod_room
    )
    _engine, bot = await bench.start(settings)
    assert bot.mod_room_problem is None, "the private room as created passes"
    expect(await mod.room_put_state(mod_room, event_type, content), RoomPutStateResponse)
    await until(lambda: bot.mod_room_problem is not None, "the bot to refuse the mod room")
    assert reason in (bot.mod_room_problem or "")


@pytest.mark.synapse
async def test_a_reply_to_the_card_is_a_note_on_the_case_and_reactions_decide(bench: Bench) -> None:
    bot_id, bot_token = bench.server.register("note_bot")
    mod, adult, junior = (bench.user(n) for n in ("note_mod", "note_adult", "note_junior"))
    mod_room = await room(mod, {bot_id: 100}, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True,
        homeserver=bench.server.url,
        user_id=bot_id,
        access_token=bot_token,
        mod_room=mod_room,
        sync_timeout_ms=10_000,
    )
    engine, bot = await bench.start(settings)
    await engine.ingest(fan_out(adult.user_id))
    await engine.drain()
    [case] = [c for c in engine.cases.by_id.values() if c.suspect == adult.user_id]
    card = await bot.mstore.card(COMMUNITY, case.id)  # type: ignore[union-attr]
    assert card is not None

    # The card as moderators see it: risk now with its peak and what it means, plain reasons, no jargon.
    shown = expect(await mod.room_get_event(mod_room, card.event_id), RoomGetEventResponse)
    body = shown.event.source["content"]["body"]
    assert "Risk now " in body and " · peak " in body and "Risk is how strongly all signs" in body
    assert "Contacting many children" in body and "fan_out" not in body and " - account " not in body
    assert " UTC · @synthetic_kid" in body  # evidence: when, which child, what
    assert "Reply to this card to add a note" in body

    # A reply as Element sends it (with the quoted fallback) becomes a note on the case.
    reply = {
        "msgtype": "m.text",
        "body": f"> <{bot_id}> 🚨 GroomGuard case #{case.id}: {adult.user_id}\n\nchecked with the school: not a coach",
        "m.relates_to": {"m.in_reply_to": {"event_id": card.event_id}},
    }
    mod.next_batch = expect(await mod.sync(timeout=0), SyncResponse).next_batch
    expect(await mod.room_send(mod_room, "m.room.message", reply), RoomSendResponse)

    async def notes() -> list[dict[str, Any]]:
        found = await engine.store.get_case(case.id)
        assert found is not None
        return [a for a in found[2] if a["action"] == "note"]

    for _ in range(250):
        if await notes():
            break
        await asyncio.sleep(0.02)
    [note] = await notes()
    assert note["actor"] == mod.user_id
    assert json.loads(note["detail"])["note"] == "checked with the school: not a coach"
    detail = await said(mod, mod_room, f"!gg case {case.id}", bot_id, "History:")
    assert "checked with the school: not a coach" in detail and "risk now" in detail

    # A non-moderator's reply is not a note (and is audited as ignored).
    expect(await mod.room_invite(mod_room, junior.user_id), RoomInviteResponse)
    expect(await junior.join(mod_room), JoinResponse)
    forged = {**reply, "body": "ignore this case"}
    expect(await junior.room_send(mod_room, "m.room.message", forged), RoomSendResponse)
    for _ in range(250):
        if junior.user_id in await audited(engine, "matrix_ignored_non_moderator"):
            break
        await asyncio.sleep(0.02)
    assert junior.user_id in await audited(engine, "matrix_ignored_non_moderator")
    assert len(await notes()) == 1
    expect(await mod.room_kick(mod_room, junior.user_id), RoomKickResponse)
    await until(lambda: bot.mod_room_problem is None, "the mod room to be moderators-only again")

    # ❌ on the card dismisses through the same decision path as every other surface.
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": card.event_id, "key": "❌"}}
    expect(await mod.room_send(mod_room, "m.reaction", reaction), RoomSendResponse)
    for _ in range(250):
        found = await engine.store.get_case(case.id)
        if found is not None and found[0].status == "dismissed":
            break
        await asyncio.sleep(0.02)
    assert found is not None and found[0].status == "dismissed"
    assert mod.user_id in await audited(engine, "dismiss")
