"""Grooming in a PUBLIC guild channel through the real detector registry and the shipped ONNX model.

Issue 13 item 2: `grooming_language` scores non-private messages too, treating a reply to a child
or a mention of one (groomguard.addressing) as an adult→child conversation weighted below a DM. A message
naming three or more children (a coach's practice times) is a broadcast and addresses nobody.

Nothing is scripted: `build_detectors(settings)` builds every registered detector and the messages
are MESSAGE_CREATE frames (the recorded reply/mention payloads, re-addressed) fed one by one to
discord.py's own state, in `general` (a guild text channel: not a DM, not a thread).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dpy_harness import (
    BYSTANDER,
    GENERAL,
    GUILD,
    KIDS,
    MOD_CHANNEL,
    SUSPECT,
    THREAD,
    Harness,
    discord_settings,
    frame,
)
from groomguard.addressing import addressees
from groomguard.engine import build_detectors
from test_addressing_events import stored_messages

pytestmark = pytest.mark.model

#: Synthetic and blatant, written for this test: age probing, home alone, secrecy, another app, a
#: photo request and a meeting, each sent as a reply to the child's post that also mentions them.
BLATANT_IN_PUBLIC = [
    "hey cutie how old r u",
    "r u home alone rn",
    "dont tell ur mum we talk ok",
    "add me on snap its more private",
    "send me a pic of u",
    "we could meet up this weekend, i can pick u up",
]

#: A coach's practice times and instructions, each naming the same three children at once. The
#: logistics touch words the stage lexicon knows (ages and school, a lift, a photo, another app), so
#: scored as three one-to-one conversations they would warn the children: only the broadcast rule
#: keeps them quiet.
COACH_POSTS = [
    "practice moved to 5pm on saturday at the leisure centre, please be there by 4:45",
    "bring ur kit, shin pads and a water bottle. no jewellery on the pitch please",
    "how old r u all now? i need ur ages and school for the league form",
    "if ur parents cant drop u off i can pick u up, just message me",
    "send me a pic of the signed consent form, or add the team whatsapp its easier",
    "great effort today all three of u, well done. same time next week",
]

#: The child's own post in `general` that the adult replies to.
CHILD_POST_ID = 1300000000000000500
START = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def _member(user: int) -> dict[str, Any]:
    """The guild member object of `user` as GUILD_CREATE recorded it (roles carry the age band)."""
    members = frame("guild_create.json")["d"]["members"]
    return next(m for m in members if m["user"]["id"] == str(user))


def _mention(user: int) -> dict[str, Any]:
    """A `mentions[]` entry as the gateway sends it in a guild: the user with its partial member."""
    member = _member(user)
    partial = {k: v for k, v in member.items() if k != "user"}
    return {**member["user"], "global_name": member["user"]["username"], "public_flags": 0, "member": partial}


def _author(d: dict[str, Any], user: int) -> None:
    """Make `user` the author of the MESSAGE_CREATE payload `d` (author object and member roles)."""
    member = _member(user)
    d["author"] = {**member["user"], "global_name": member["user"]["username"], "public_flags": 0}
    d["member"] = {**d["member"], "roles": member["roles"]}


def _child_post() -> dict[str, Any]:
    """The child's own message in `general` (the recorded reply's referenced message, as its own frame)."""
    payload = frame("message_create_reply.json")
    d = payload["d"]["referenced_message"]
    d["id"] = str(CHILD_POST_ID)
    d["content"] = "finished my first pixel dragon!! what do u all think"
    d["timestamp"] = START.isoformat(timespec="microseconds")
    d["attachments"] = []
    return {"op": 0, "s": 30, "t": "MESSAGE_CREATE", "d": d}


def _reply_to_child(index: int, text: str) -> dict[str, Any]:
    """The adult's reply (type 19) to the child's post in `general`, mentioning the child."""
    payload = frame("message_create_reply.json")
    d = payload["d"]
    child = KIDS[0]
    d["id"] = str(1300000000000000600 + index)
    d["nonce"] = str(1349876543210988000 + index)
    d["content"] = f"<@{child}> {text}"
    d["timestamp"] = (START + timedelta(minutes=1 + index)).isoformat(timespec="microseconds")
    d["mentions"] = [_mention(child)]
    d["message_reference"]["message_id"] = str(CHILD_POST_ID)
    d["referenced_message"] = _child_post()["d"]
    assert d["channel_id"] == str(GENERAL) and d["author"]["id"] == str(SUSPECT)
    return payload


def _coach_post(index: int, text: str, kids: list[int]) -> dict[str, Any]:
    """A plain message (type 0) in `general` from the coach, mentioning every child in `kids`."""
    payload = frame("message_create_mentions.json")
    d = payload["d"]
    _author(d, BYSTANDER)
    d["id"] = str(1300000000000000700 + index)
    d["nonce"] = str(1349876543210989000 + index)
    d["content"] = " ".join(f"<@{k}>" for k in kids) + " " + text
    d["timestamp"] = (START + timedelta(minutes=2 * index)).isoformat(timespec="microseconds")
    d["mentions"] = [_mention(k) for k in kids]
    assert d["channel_id"] == str(GENERAL)
    return payload


async def _harness(make_harness: Any, tmp_path: Path) -> Harness:
    """A connected harness running every registered detector (the real model included)."""
    detectors = build_detectors(discord_settings(tmp_path / "groomguard.db"))
    assert "grooming_language" in [d.name for d in detectors]
    h: Harness = await make_harness(detectors=detectors)
    return h


async def _conversation(h: Harness, author: int, child: int) -> dict[str, Any] | None:
    """What `grooming_language` remembers of author→child in `general` (None: never treated as one)."""
    memory = h.engine.state.memory("grooming_language")
    key = f"{GENERAL}\x1f{author}\x1f{child}"
    value: dict[str, Any] | None = await memory.get(str(GUILD), key)
    return value


async def test_grooming_a_child_in_a_public_channel_warns_the_child_and_posts_a_card(
    make_harness: Any, tmp_path: Path
) -> None:
    """An adult replying to and mentioning a child in `general`: the child is DMed, moderators get a card."""
    h = await _harness(make_harness, tmp_path)
    child = KIDS[0]
    h.feed(_child_post())
    await h.settle()
    for index, line in enumerate(BLATANT_IN_PUBLIC):
        h.feed(_reply_to_child(index, line))
        await h.settle()  # one message at a time, as a live channel delivers them

    # The messages are group messages: not private, in the channel, addressed to the child by the reply.
    messages = await stored_messages(h)
    sent = [messages[str(1300000000000000600 + i)] for i in range(len(BLATANT_IN_PUBLIC))]
    for event in sent:
        assert not event.private and event.conversation == str(GENERAL)
        assert event.reply_to == str(CHILD_POST_ID) and event.reply_to_author == str(child)
        assert event.mentions == (str(child),)
        assert [(a.account, a.how) for a in await addressees(event, h.engine.state)] == [(str(child), "reply")]

    # The child gets GroomGuard's private notice in a DM: the only DM opened is to them.
    opened = h.rest.find("POST", "/users/@me/channels")
    assert [c.json for c in opened] == [{"recipient_id": child}], h.rest.paths()
    dm = h.rest.find("POST", f"/channels/{opened[0].response['id']}/messages")
    assert len(dm) == 1, h.rest.paths()
    body = dm[0].json
    assert "You have not done anything wrong" in body["content"] and str(SUSPECT) not in body["content"]
    assert body["allowed_mentions"] == {"parse": []}

    # Moderators get one card naming grooming language and the child.
    cards = [c for c in h.card_calls() if c.method == "POST"]
    assert len(cards) == 1, h.rest.paths()
    fields = cards[0].json["embeds"][0]["fields"]
    assert any(f["name"].startswith("Grooming language towards a child") for f in fields), fields
    assert any(f["name"].startswith("Children involved") and str(child) in f["value"] for f in fields), fields
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].suspect == str(SUSPECT)
    assert "grooming_language" in found[0].reasons and str(child) in found[0].children

    # The suspect and the public channel see nothing: no call into `general`, no DM to the suspect.
    for call in h.rest.calls:
        assert not call.path.startswith((f"/channels/{GENERAL}", f"/channels/{THREAD}")), call
        if call.path == "/users/@me/channels":
            assert int(call.json["recipient_id"]) != SUSPECT
    assert all(c.path.startswith(f"/channels/{MOD_CHANNEL}") for c in h.card_calls())

    # Scored as open-room evidence: the pair's conversation carries the reply weight (0.8), not a DM's 1.0.
    conversation = await _conversation(h, SUSPECT, child)
    assert conversation is not None, "grooming_language never treated the replies as a conversation with the child"
    assert conversation["weight"] == pytest.approx(0.8), (
        "a public-channel reply was scored at full DM weight: the child reached the detector through "
        "MessageSent.recipients, not through groomguard.addressing"
    )


async def test_a_coach_naming_three_children_at_once_alerts_no_one(make_harness: Any, tmp_path: Path) -> None:
    """Practice times mentioning three children, several times: a broadcast, so no notice and no card."""
    h = await _harness(make_harness, tmp_path)
    team = KIDS[:3]
    for index, text in enumerate(COACH_POSTS):
        h.feed(_coach_post(index, text, team))
        await h.settle()

    messages = await stored_messages(h)
    posts = [messages[str(1300000000000000700 + i)] for i in range(len(COACH_POSTS))]
    for event in posts:
        assert not event.private and event.author == str(BYSTANDER)
        assert set(event.mentions) == {str(k) for k in team}
        assert await addressees(event, h.engine.state) == []  # three children named: a broadcast

    # Nothing reaches anyone: no DM opened, no card, nothing from grooming_language on the coach.
    # (The mentions are contact edges, so fan_out may keep a quiet, below-threshold case: no card.)
    assert h.rest.find("POST", "/users/@me/channels") == [], h.rest.paths()
    assert h.card_calls() == [], h.rest.paths()
    found = await h.engine.store.get_case(1)
    assert found is None or "grooming_language" not in found[0].reasons, found
    for call in h.rest.calls:
        assert not call.path.startswith(f"/channels/{GENERAL}"), call

    # The detector did not treat the broadcast as a conversation with any of the three.
    for kid in team:
        assert await _conversation(h, BYSTANDER, kid) is None, (
            f"the coach's broadcast was scored as a conversation with {kid}"
        )

    # Control: the same coach replying to one child IS a group conversation the detector now keeps
    # (weighted as a reply); with group-room detection off there would be nothing remembered here.
    h.feed(_child_post())
    await h.settle()
    reply = _reply_to_child(50, "well done today, that was a great save")
    _author(reply["d"], BYSTANDER)
    reply["d"]["timestamp"] = (START + timedelta(minutes=30)).isoformat(timespec="microseconds")
    h.feed(reply)
    await h.settle()
    one = await _conversation(h, BYSTANDER, KIDS[0])
    assert one is not None and one["weight"] == pytest.approx(0.8), one
    assert h.rest.find("POST", "/users/@me/channels") == [] and h.card_calls() == []
