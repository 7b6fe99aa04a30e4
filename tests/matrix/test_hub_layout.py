"""The hub layout from issue 13 on a real Synapse, set up as docs/matrix.md says.

A moderator creates the rooms and invites the adult into `adults` and the children into `teens`;
the bot learns ages from those rooms. Then the adult DM-invites eight children in rooms the bot is
not in: only the Synapse module sees those invites, and reports them through the webhook. Before
issue 13 the moderator counted as a mutual contact of the adult and every child, so fan_out never
fired. Now the moderator (declared from the rooms' power levels and creator) vouches for no one:
fan_out alerts, and the children the adult reaches after the alert get the account-pattern notice
in a private room with the bot. The adult sees nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from groomguard.addressing import addressees
from groomguard.config import MatrixSettings
from groomguard.events import MessageSent
from nio import JoinResponse, RoomInviteResponse, RoomSendResponse, SyncResponse

from tests.matrix.test_adapter_e2e import (  # noqa: F401 - fixtures reused: one Synapse for this module
    COMMUNITY,
    Scenario,
    cards_in,
    expect,
    homeserver,
    room,
    timeline,
    wait_for,
    webhook_port,
)
from tests.synapse.homeserver import Homeserver

pytestmark = pytest.mark.synapse

KIDS = 8


async def test_a_moderator_who_invited_everyone_vouches_for_no_one(
    homeserver: Homeserver,  # noqa: F811
    webhook_port: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    s = Scenario(homeserver, tmp_path / "groomguard.db", webhook_port)
    try:
        await _hub_layout(s)
    finally:
        if s.adapter is not None and s.adapter.ready:
            await s.stop_bot()
        await s.close()


async def _hub_layout(s: Scenario) -> None:
    started = time.monotonic()
    bot_id, bot_token = s.server.register("hub_bot")
    mod, adult = s.user("hub_mod"), s.user("hub_adult")
    kids = [s.user(f"hub_kid{i}") for i in range(KIDS)]
    bot_power = {bot_id: 100}
    mod_room = await room(mod, "moderators", bot_power, public=False, invite=[bot_id])
    teens = await room(mod, "teens", bot_power, public=False, invite=[bot_id])
    adults = await room(mod, "adults", bot_power, public=False, invite=[bot_id])
    general = await room(mod, "general", bot_power, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True,
        homeserver=s.server.url,
        user_id=bot_id,
        access_token=bot_token,
        mod_room=mod_room,
        protected_rooms=[general],
        minor_rooms=[teens],
        adult_rooms=[adults],
        sync_timeout_ms=10_000,
    )
    bot = await s.start_bot(settings)
    assert bot.mod_room_problem is None
    engine = s.engine
    assert engine is not None

    # The moderator invites everyone into the community's rooms; they all accept.
    expect(await mod.room_invite(adults, adult.user_id), RoomInviteResponse)
    expect(await adult.join(adults), JoinResponse)
    for kid in kids:
        expect(await mod.room_invite(teens, kid.user_id), RoomInviteResponse)
        expect(await kid.join(teens), JoinResponse)

    def mutual_everywhere() -> bool:
        accounts = [engine.state.accounts.get((COMMUNITY, k.user_id)) for k in kids]
        return all(a is not None and a.is_minor for a in accounts)

    await wait_for(mutual_everywhere, "the kids' age bands from `teens`")

    # The layout that blinded fan_out: the moderator is an accepted contact of the adult and every kid.
    async def mod_is_mutual() -> bool:
        contacts = [await engine.state.accepted_contacts(COMMUNITY, m.user_id) for m in [adult, *kids]]
        return all(mod.user_id in c for c in contacts)

    deadline = time.monotonic() + 10
    while not await mod_is_mutual():
        assert time.monotonic() < deadline, "the moderator's invitations were not all accepted"
        await engine.drain()
    mod_account = engine.state.accounts[(COMMUNITY, mod.user_id)]
    assert {"moderator", "creator"} <= mod_account.standings, mod_account

    # In `general` (a group room, not private): what groomguard.addressing needs reaches the events.
    for member in [adult, *kids[:4]]:
        expect(await member.join(general), JoinResponse)
    said = expect(
        await kids[0].room_send(general, "m.room.message", {"msgtype": "m.text", "body": "anyone on tonight?"}),
        RoomSendResponse,
    ).event_id
    reply_content = {
        "msgtype": "m.text",
        "body": f"> <{kids[0].user_id}> anyone on tonight?\n\nim on, u play?",
        "m.relates_to": {"m.in_reply_to": {"event_id": said}},
        "m.mentions": {"user_ids": [kids[0].user_id]},
    }
    reply_id = expect(await adult.room_send(general, "m.room.message", reply_content), RoomSendResponse).event_id
    practice = {
        "msgtype": "m.text",
        "body": "practice at 5",
        "m.mentions": {"user_ids": [k.user_id for k in kids[1:4]]},
    }
    practice_id = expect(await mod.room_send(general, "m.room.message", practice), RoomSendResponse).event_id

    async def group_messages() -> dict[str, MessageSent]:
        rows = await s.events_of("message_sent")
        return {r["message_id"]: MessageSent(**r) for r in rows if r["conversation"] == general}

    deadline = time.monotonic() + 10
    while not {reply_id, practice_id} <= set(await group_messages()):
        assert time.monotonic() < deadline, "the group messages were not stored"
        await engine.drain()
    stored = await group_messages()
    reply = stored[reply_id]
    assert not reply.private and reply.reply_to == said and reply.reply_to_author == kids[0].user_id
    assert reply.mentions == (kids[0].user_id,) and reply.text == "im on, u play?"
    assert [(a.account, a.how) for a in await addressees(reply, engine.state)] == [(kids[0].user_id, "reply")]
    assert await addressees(stored[practice_id], engine.state) == []  # three children at once: a broadcast

    # The adult DM-invites all eight children in rooms the bot is not in; nobody answers.
    alert_after: int | None = None
    for i, kid in enumerate(kids):
        await room(adult, "", {}, public=False, is_direct=True, invite=[kid.user_id])

        async def dm_requests() -> int:
            rows = await s.events_of("contact_requested")
            return sum(1 for r in rows if r["source"] == adult.user_id and r["kind"] == "dm")

        deadline = time.monotonic() + 10
        while await dm_requests() < i + 1:
            assert time.monotonic() < deadline, "the Synapse module did not report the DM invite"
            await engine.drain()
        await engine.drain()
        case = engine.cases.active.get((COMMUNITY, adult.user_id))
        if alert_after is None and case is not None and case.alert_version > 0:
            alert_after = i + 1
    assert alert_after is not None, "fan_out never alerted on the adult (the moderator still vouches)"
    print(f"\nhub layout: fan_out alerted after DM invite {alert_after} of {KIDS}")
    case = engine.cases.active[(COMMUNITY, adult.user_id)]
    assert "fan_out" in case.reasons and "rejections" not in case.reasons
    assert "shared only a moderator, bot, room creator or hub account" in case.reasons["fan_out"]["text"]
    assert (COMMUNITY, mod.user_id) not in engine.cases.active, "the moderator's own invitations are the layout"
    assert sorted(case.children) == sorted(k.user_id for k in kids[:alert_after]) or len(case.children) >= 6

    # The card reaches the mod room and lists every child counted, each a pill.
    await engine.drain()
    originals: list = []
    for _ in range(100):
        originals, edits = cards_in(await timeline(mod, mod_room), bot_id)
        if originals:
            break
        await engine.drain()
    [card] = originals
    latest = (edits[-1]["content"]["m.new_content"] if edits else card["content"])["formatted_body"]
    assert "Contacting many children" in latest
    assert all(f"https://matrix.to/#/{k.user_id}" in latest for k in kids[:alert_after])
    print(f"hub layout: card edits for the case: {len(edits)}")

    # The children reached after the alert get the account-pattern notice from the bot, privately.
    warned = kids[alert_after - 1 :]
    for kid in warned:
        notice_room = None
        for _ in range(20):
            invites = expect(await kid.sync(timeout=500), SyncResponse).rooms.invite
            notice_room = next(
                (
                    r
                    for r, info in invites.items()
                    if any(getattr(e, "sender", None) == bot_id for e in info.invite_state)
                ),
                None,
            )
            if notice_room:
                break
        assert notice_room is not None, f"{kid.user_id} got no notice"
        expect(await kid.join(notice_room), JoinResponse)
        texts = [
            e["content"]["body"]
            for e in await timeline(kid, notice_room)
            if e["sender"] == bot_id and e["type"] == "m.room.message"
        ]
        assert any("sent requests or messages to many young people" in t for t in texts)
        assert all(adult.user_id not in t for t in texts)
    # Nothing reached the adult: no invite or message from the bot (its own joins are all it sees).
    adult_view = expect(await adult.sync(timeout=0, full_state=True), SyncResponse)
    for info in adult_view.rooms.invite.values():
        assert all(getattr(e, "sender", None) != bot_id for e in info.invite_state)
    for joined in adult_view.rooms.join.values():
        assert not [e for e in joined.timeline.events if e.sender == bot_id and e.source["type"] == "m.room.message"]
    print(f"hub layout scenario took {time.monotonic() - started:.1f}s; {len(warned)} children warned")
