"""Discord, gateway frames in: a child a fan-out suspect contacts after the alert gets a private DM
from its own template; the suspect sees nothing, and the same child is not told twice."""

from __future__ import annotations

from typing import Any

from dpy_harness import KIDS, SUSPECT, Harness, frame
from groomguard.actions import ChildNotice


def reply_again(n: int, kid: int) -> dict[str, Any]:
    """The recorded reply frame, re-sent `n` hours later as a new message to `kid`."""
    payload = frame("message_create_reply.json")
    d = payload["d"]
    d["id"] = str(1300000000000000100 + n)
    d["timestamp"] = f"2026-03-02T{9 + n:02d}:30:00.000000+00:00"
    d["content"] = f"hey <@{kid}> nice one"
    d["mentions"] = [m for m in d["mentions"] if m["id"] == str(kid)] or d["mentions"][:1]
    d["mentions"][0]["id"] = str(kid)
    d.pop("referenced_message", None)
    d.pop("message_reference", None)
    d["type"] = 0
    return payload


def dms_to(h: Harness) -> list[int]:
    return [int(c.json["recipient_id"]) for c in h.rest.find("POST", "/users/@me/channels")]


async def test_a_child_contacted_after_the_fan_out_alert_is_warned_privately(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    assert h.card_calls(), "the fan-out card is posted"
    already = set(dms_to(h))
    # Kids warned while the mention message was still being read (after the card opened) are already told.
    target = next(k for k in KIDS if k not in already)
    h.feed(reply_again(1, target))
    await h.settle()
    h.feed(reply_again(2, target))  # within min_hours_between: no second notice
    await h.settle()
    recipients = dms_to(h)
    assert recipients.count(target) == 1 and SUSPECT not in recipients
    text = next(
        c.json["content"] or c.json["embeds"][0]["description"]
        for c in h.rest.calls
        if c.method == "POST" and c.path == f"/channels/{h.rest.dm_channels[target]}/messages"
    )
    assert "sent requests or messages to many young people" in text
    assert str(SUSPECT) not in text and "adult_alex" not in text.lower()
    pending = await h.engine.store.pending_actions()
    assert not [a for a in pending if isinstance(a, ChildNotice)], "every notice was delivered"
