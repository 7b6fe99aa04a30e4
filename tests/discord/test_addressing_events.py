"""Discord gateway frames carry what groomguard.addressing needs: reply target, its author and mentions."""

from __future__ import annotations

from typing import Any

from dpy_harness import GUILD, KIDS, MODERATOR, SUSPECT, Harness
from groomguard.addressing import addressees
from groomguard.events import MessageSent, parse_event


async def stored_messages(h: Harness) -> dict[str, MessageSent]:
    db = h.engine.store.db  # type: ignore[attr-defined]
    async with db.execute("SELECT body FROM events WHERE type = 'message_sent'") as cur:
        events = [parse_event(row[0]) for row in await cur.fetchall()]
    return {e.message_id: e for e in events if isinstance(e, MessageSent)}


async def test_replies_and_mentions_reach_the_event_and_address_the_child(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    messages = await stored_messages(h)
    reply = messages["1300000000000000002"]
    assert reply.author == str(SUSPECT) and not reply.private
    assert reply.reply_to_author == str(KIDS[0]) and reply.reply_to is not None
    assert reply.mentions == (str(KIDS[0]),)
    assert [(a.account, a.how) for a in await addressees(reply, h.engine.state)] == [(str(KIDS[0]), "reply")]
    # Four children named in one message: a broadcast, which addresses none of them.
    mass = messages["1300000000000000003"]
    assert set(mass.mentions) == {str(k) for k in KIDS[1:5]}
    assert await addressees(mass, h.engine.state) == []


async def test_the_owner_moderators_and_bots_are_declared_at_start_up(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.settle()
    community = str(GUILD)
    moderator = await h.engine.state.account(community, str(MODERATOR))
    assert {"moderator", "creator"} <= moderator.standings  # mod role and server owner
    assert (await h.engine.state.account(community, str(SUSPECT))).standings == frozenset()
    assert (await h.engine.state.account(community, str(KIDS[0]))).standings == frozenset()
