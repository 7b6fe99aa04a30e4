"""Grooming in a Matrix GROUP room on a real Synapse, scored by the real registry and shipped model.

Issue 13 item 2: `grooming_language` scores non-private messages too. In a room with the bot,
several adults and a child, an adult who replies to the child (`m.relates_to.m.in_reply_to`) and
mentions them (`m.mentions.user_ids`) is in an adult→child conversation (groomguard.addressing, weighted
below a DM); a coach's message naming three children is a broadcast and addresses nobody.

The translator marks a room private only when it is a DM or has at most two people besides the
bot, and gives group messages no `recipients`: before group-room detection nothing here reached
`grooming_language` at all, so the child's notice and the card below exist only because of it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from groomguard.addressing import addressees
from groomguard.config import MatrixSettings
from groomguard.events import MessageSent
from nio import AsyncClient, JoinResponse, RoomInviteResponse, RoomSendResponse, SyncResponse

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

pytestmark = [pytest.mark.synapse, pytest.mark.model]

#: Synthetic and blatant, written for this test: age probing, home alone, secrecy, another app, a
#: photo request and a meeting, each a reply to the child's post that also mentions them.
BLATANT_IN_PUBLIC = (
    "hey cutie how old r u",
    "r u home alone rn",
    "dont tell ur mum we talk ok",
    "add me on snap its more private",
    "send me a pic of u",
    "we could meet up this weekend, i can pick u up",
)

#: A coach's practice times and instructions, each naming the same three children. The logistics
#: touch words the stage lexicon knows (ages and school, a lift, a photo, another app): scored as
#: three one-to-one conversations they could warn the children; the broadcast rule keeps them quiet.
COACH_POSTS = (
    "practice moved to 5pm on saturday at the leisure centre, please be there by 4:45",
    "bring ur kit, shin pads and a water bottle. no jewellery on the pitch please",
    "how old r u all now? i need ur ages and school for the league form",
    "if ur parents cant drop u off i can pick u up, just message me",
    "send me a pic of the signed consent form, or add the team whatsapp its easier",
    "great effort today all three of u, well done. same time next week",
)


class Community:
    """The rooms, people and running bot of one group-room scenario."""

    def __init__(self, s: Scenario, prefix: str, adults: int, kids: int) -> None:
        self.s = s
        self.bot_id, self.bot_token = s.server.register(f"{prefix}_bot")
        self.mod = s.user(f"{prefix}_mod")
        self.adults = [s.user(f"{prefix}_adult{i}") for i in range(adults)]
        self.kids = [s.user(f"{prefix}_kid{i}") for i in range(kids)]
        self.mod_room = self.teens = self.grown = self.general = ""

    async def start(self) -> None:
        """Rooms as docs/matrix.md lays them out; ages from `teens`/`adults`; everyone in `general`."""
        power = {self.bot_id: 100}
        invite = [self.bot_id]
        self.mod_room = await room(self.mod, "moderators", power, public=False, invite=invite)
        self.teens = await room(self.mod, "teens", power, public=False, invite=invite)
        self.grown = await room(self.mod, "adults", power, public=False, invite=invite)
        self.general = await room(self.mod, "general", power, invite=invite)
        settings = MatrixSettings(
            enabled=True,
            homeserver=self.s.server.url,
            user_id=self.bot_id,
            access_token=self.bot_token,
            mod_room=self.mod_room,
            protected_rooms=[self.general],
            minor_rooms=[self.teens],
            adult_rooms=[self.grown],
            sync_timeout_ms=10_000,
        )
        bot = await self.s.start_bot(settings)
        assert bot.mod_room_problem is None
        for kid in self.kids:
            expect(await self.mod.room_invite(self.teens, kid.user_id), RoomInviteResponse)
            expect(await kid.join(self.teens), JoinResponse)
        for adult in self.adults:
            expect(await self.mod.room_invite(self.grown, adult.user_id), RoomInviteResponse)
            expect(await adult.join(self.grown), JoinResponse)
        for member in [*self.adults, *self.kids]:
            expect(await member.join(self.general), JoinResponse)
        engine = self.s.engine
        assert engine is not None

        def ages_known() -> bool:
            accounts = [engine.state.accounts.get((COMMUNITY, m.user_id)) for m in [*self.kids, *self.adults]]
            return all(a is not None for a in accounts) and all(
                engine.state.accounts[(COMMUNITY, k.user_id)].is_minor for k in self.kids
            )

        await wait_for(ages_known, "the age bands from `teens` and `adults`")

        def in_general() -> bool:
            info = bot.translator.rooms.get(self.general)
            return info is not None and {m.user_id for m in [*self.adults, *self.kids]} <= info.joined()

        await wait_for(in_general, "everyone joined in `general`")

    async def say(self, who: AsyncClient, content: dict[str, Any]) -> str:
        """Send one message to `general` and wait until the engine has stored and judged it."""
        event_id = str(expect(await who.room_send(self.general, "m.room.message", content), RoomSendResponse).event_id)
        engine = self.s.engine
        assert engine is not None
        deadline = time.monotonic() + 10
        while event_id not in await self.stored():
            assert time.monotonic() < deadline, f"{event_id} was never stored"
            await engine.drain()
        async with engine._lock:  # stored is not yet judged: detectors run under the writer lock
            pass
        await engine.drain()
        return event_id

    async def stored(self) -> dict[str, MessageSent]:
        """The stored `message_sent` events of `general`, by message id."""
        rows = await self.s.events_of("message_sent")
        return {r["message_id"]: MessageSent(**r) for r in rows if r["conversation"] == self.general}

    async def conversation(self, author: str, child: str) -> dict[str, Any] | None:
        """What `grooming_language` remembers of author→child in `general` (None: never a conversation)."""
        assert self.s.engine is not None
        memory = self.s.engine.state.memory("grooming_language")
        value: dict[str, Any] | None = await memory.get(COMMUNITY, f"{self.general}\x1f{author}\x1f{child}")
        return value

    async def bot_invites(self, who: AsyncClient, wait_ms: int = 500, tries: int = 1) -> list[str]:
        """Rooms the bot has invited `who` to (its private notice room, when there is one)."""
        found: list[str] = []
        for _ in range(tries):
            invites = expect(await who.sync(timeout=wait_ms), SyncResponse).rooms.invite
            found = [
                r
                for r, info in invites.items()
                if any(getattr(e, "sender", None) == self.bot_id for e in info.invite_state)
            ]
            if found:
                break
        return found

    async def bot_posts_in_general(self) -> list[dict[str, Any]]:
        """Messages, reactions or anything else the bot sent into `general` (state events aside)."""
        return [
            e
            for e in await timeline(self.mod, self.general)
            if e["sender"] == self.bot_id and "state_key" not in e  # its join is all it may leave there
        ]


def reply_content(to: AsyncClient, to_event: str, quoted: str, text: str) -> dict[str, Any]:
    """A rich reply as Element sends it: quote fallback, `m.in_reply_to` and `m.mentions`."""
    return {
        "msgtype": "m.text",
        "body": f"> <{to.user_id}> {quoted}\n\n{text}",
        "m.relates_to": {"m.in_reply_to": {"event_id": to_event}},
        "m.mentions": {"user_ids": [to.user_id]},
    }


async def _run(
    server: Homeserver, port: int, tmp_path: Path, prefix: str, scenario: Callable[[Scenario, str], Awaitable[None]]
) -> None:
    """Run one scenario with a fresh bot and database on the module's Synapse; always stop the bot."""
    started = time.monotonic()
    s = Scenario(server, tmp_path / "groomguard.db", port)
    try:
        await scenario(s, prefix)
    finally:
        if s.adapter is not None and s.adapter.ready:
            await s.stop_bot()
        await s.close()
    print(f"\n{prefix} group-room scenario took {time.monotonic() - started:.1f}s")


async def test_grooming_a_child_in_a_group_room_warns_the_child_and_posts_a_card(
    homeserver: Homeserver,  # noqa: F811
    webhook_port: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An adult replying to and mentioning a child in `general`: a private notice and a card, nothing public."""
    await _run(homeserver, webhook_port, tmp_path, "grp", _grooming_in_general)


async def _grooming_in_general(s: Scenario, prefix: str) -> None:
    """Test C: three adults and a child in `general`; one adult grooms the child in replies."""
    c = Community(s, prefix, adults=3, kids=1)
    await c.start()
    engine = s.engine
    assert engine is not None
    suspect, child = c.adults[0], c.kids[0]
    others = c.adults[1:]

    # Ordinary room chatter first, then the child's post the suspect replies to.
    await c.say(others[0], {"msgtype": "m.text", "body": "anyone watching the match tonight?"})
    await c.say(others[1], {"msgtype": "m.text", "body": "yeah, kick off at 8"})
    quoted = "finished my first pixel dragon!! what do u all think"
    post = await c.say(child, {"msgtype": "m.text", "body": quoted})
    sent = [await c.say(suspect, reply_content(child, post, quoted, line)) for line in BLATANT_IN_PUBLIC]

    # Group messages: not private, no recipients; addressed to the child by the reply.
    stored = await c.stored()
    for event_id, line in zip(sent, BLATANT_IN_PUBLIC, strict=True):
        event = stored[event_id]
        assert not event.private and event.recipients == ()
        assert event.reply_to == post and event.reply_to_author == child.user_id
        assert event.mentions == (child.user_id,) and event.text == line
        assert [(a.account, a.how) for a in await addressees(event, engine.state)] == [(child.user_id, "reply")]

    # grooming_language kept the pair as a group conversation (reply weight) and put itself on the case.
    conversation = await c.conversation(suspect.user_id, child.user_id)
    assert conversation is not None and conversation["weight"] == pytest.approx(0.8), conversation
    case = engine.cases.active.get((COMMUNITY, suspect.user_id))
    assert case is not None and "grooming_language" in case.reasons, case
    assert child.user_id in case.children

    # The mod room gets the card about the suspect, naming grooming language and the child.
    card: dict[str, Any] | None = None
    latest = ""
    for _ in range(100):
        originals, edits = cards_in(await timeline(c.mod, c.mod_room), c.bot_id)
        mine = [e for e in originals if suspect.user_id in e["content"]["body"].splitlines()[0]]
        if mine:
            card = mine[0]
            own = [e for e in edits if e["content"]["m.relates_to"]["event_id"] == card["event_id"]]
            latest = (own[-1]["content"]["m.new_content"] if own else card["content"])["body"]
            if "Grooming language" in latest:
                break
        await engine.drain()
    assert card is not None, "no card in the mod room"
    assert "Grooming language" in latest and child.user_id in latest, latest

    # The child gets the private notice from the bot, in a room of their own; it does not name the suspect.
    rooms = await c.bot_invites(child, tries=20)
    assert len(rooms) == 1, rooms
    notice_room = rooms[0]
    assert notice_room not in (c.general, c.mod_room, c.teens, c.grown)
    expect(await child.join(notice_room), JoinResponse)
    texts = [
        e["content"]["body"]
        for e in await timeline(child, notice_room)
        if e["sender"] == c.bot_id and e["type"] == "m.room.message"
    ]
    assert len(texts) == 1 and "You have not done anything wrong" in texts[0], texts
    assert suspect.user_id not in texts[0]
    members = await child.joined_members(notice_room)
    assert sorted(m.user_id for m in members.members) == sorted([c.bot_id, child.user_id])

    # Nothing in the group room, and nothing for the suspect or the other adults.
    assert await c.bot_posts_in_general() == []
    for adult in c.adults:
        assert await c.bot_invites(adult, wait_ms=0) == [], adult.user_id


async def test_a_coach_naming_three_children_in_a_group_room_alerts_no_one(
    homeserver: Homeserver,  # noqa: F811
    webhook_port: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A coach's practice posts mentioning three children at once: no notice, no card, nothing posted."""
    await _run(homeserver, webhook_port, tmp_path, "team", _coach_in_general)


async def _coach_in_general(s: Scenario, prefix: str) -> None:
    """Test D: a coach, another adult and three children in `general`; the coach names all three."""
    c = Community(s, prefix, adults=2, kids=3)
    await c.start()
    engine = s.engine
    assert engine is not None
    coach = c.adults[0]

    sent = []
    for text in COACH_POSTS:
        names = " ".join(k.user_id for k in c.kids)
        content = {
            "msgtype": "m.text",
            "body": f"{names} {text}",
            "m.mentions": {"user_ids": [k.user_id for k in c.kids]},
        }
        sent.append(await c.say(coach, content))
    stored = await c.stored()
    for event_id in sent:
        event = stored[event_id]
        assert not event.private and set(event.mentions) == {k.user_id for k in c.kids}
        assert await addressees(event, engine.state) == []  # three children named: a broadcast

    # The detector kept no conversation with any of them, and nothing grooming-related exists.
    for kid in c.kids:
        assert await c.conversation(coach.user_id, kid.user_id) is None, kid.user_id
    case = engine.cases.active.get((COMMUNITY, coach.user_id))
    assert case is None or "grooming_language" not in case.reasons, case

    # No card, no notice to any child, nothing in the group room.
    await engine.drain()
    originals, _ = cards_in(await timeline(c.mod, c.mod_room), c.bot_id)
    assert originals == [], [e["content"]["body"] for e in originals]
    for kid in c.kids:
        assert await c.bot_invites(kid) == [], kid.user_id
    assert await c.bot_posts_in_general() == []

    # Control: the same coach replying to one child is a group conversation the detector keeps (reply
    # weight); with group-room detection off nothing would be remembered for the pair.
    kid = c.kids[0]
    quoted = "was that offside??"
    post = await c.say(kid, {"msgtype": "m.text", "body": quoted})
    await c.say(coach, reply_content(kid, post, quoted, "no it was onside, great run though"))
    one = await c.conversation(coach.user_id, kid.user_id)
    assert one is not None and one["weight"] == pytest.approx(0.8), one
    assert await c.bot_invites(kid) == []
