"""Gateway frames in, REST calls out: alert cards, child DMs, and that the suspect never sees anything."""

from __future__ import annotations

import json
from typing import Any

from dpy_harness import (
    GENERAL,
    GUILD,
    KIDS,
    MOD_CHANNEL,
    SUSPECT,
    THREAD,
    Harness,
    frame,
)


def _custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


def _risk(title: str) -> float:
    return float(title.split("risk now ")[1].split(" ")[0])


def _assert_suspect_sees_nothing(h: Harness) -> None:
    """No public reply, no reaction, no DM, no role change: nothing the suspect could notice."""
    for call in h.rest.calls:
        assert not call.path.startswith(f"/channels/{GENERAL}"), call
        assert not call.path.startswith(f"/channels/{THREAD}"), call
        assert "/reactions" not in call.path, call
        assert "/roles/" not in call.path, call
        if call.path == "/users/@me/channels":
            assert int(call.json["recipient_id"]) != SUSPECT, call


async def test_adult_replying_to_and_mentioning_many_minors_posts_then_edits_one_card(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(frame("message_create_reply.json"))
    h.feed(frame("message_create_mentions.json"))
    await h.settle()

    posts = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")
    assert len(posts) == 1, h.rest.paths()
    card = posts[0].json
    embed = card["embeds"][0]
    assert embed["title"].startswith("Case #1 · risk ") and embed["title"].endswith(" · open")
    assert str(SUSPECT) in embed["description"]
    # Plain words, one risk number with its peak and what it means; no detector names or raw ids.
    assert any(f["name"].startswith("Contacting many children") and "under-18" in f["value"] for f in embed["fields"])
    assert " · risk now " in embed["title"] and " · peak " in embed["title"]
    assert "Risk is how strongly all signs together point to grooming" in embed["description"]
    evidence = next(f["value"] for f in embed["fields"] if f["name"] == "Evidence")
    assert " UTC · <@" in evidence and "account:" not in evidence and "(event" not in evidence
    assert "fan_out" not in json.dumps(card)
    assert card["allowed_mentions"] == {"parse": []}
    assert _custom_ids(card) == [
        "gg:1:confirm",
        "gg:1:dismiss",
        "gg:1:escalate",
        "gg:1:evidence",
        "gg:1:kick",
        "gg:1:ban",
        "gg:1:timeout",
    ]

    # The fifth minor raises the risk: the same card is edited in place, not a second alert.
    message_id = posts[0].response["id"]
    edits = h.rest.find("PATCH", f"/channels/{MOD_CHANNEL}/messages/{message_id}")
    assert edits, h.rest.paths()
    last = edits[-1].json["embeds"][0]
    assert _risk(last["title"]) > _risk(embed["title"])
    assert last["footer"]["text"].endswith(f"update {len(edits) + 1}")

    card_row = await h.adapter.cards.card(1)  # type: ignore[union-attr]
    assert card_row is not None and card_row.message_id == int(message_id) and card_row.version == len(edits) + 1
    _assert_suspect_sees_nothing(h)


async def test_grooming_in_a_private_thread_dms_the_child_and_opens_a_case(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(frame("thread_create.json"))
    h.feed(frame("thread_members_update.json"))
    h.feed(frame("message_create_thread.json"))
    await h.settle()

    child = str(KIDS[0])
    opened = h.rest.find("POST", "/users/@me/channels")
    assert [c.json for c in opened] == [{"recipient_id": KIDS[0]}]
    dm_channel = opened[0].response["id"]
    sent = h.rest.find("POST", f"/channels/{dm_channel}/messages")
    assert len(sent) == 1
    text = sent[0].json["content"]
    assert "You have not done anything wrong" in text and "Childline" in text
    assert str(SUSPECT) not in text and "grooming" not in text.lower()

    cards = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")
    assert len(cards) == 1
    fields = cards[0].json["embeds"][0]["fields"]
    assert any(f["name"].startswith("Grooming language towards a child") for f in fields)
    assert any(f["name"].startswith("Children involved") and child in f["value"] for f in fields)

    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].suspect == str(SUSPECT) and child in found[0].children
    # The private thread's new member is an invitation from its owner.
    events = [e for _, e in await h.engine.store.events_after(0, 1000)]
    assert any(
        e.type == "contact_requested" and e.kind == "invite" and e.target == child and e.source == str(SUSPECT)  # type: ignore[attr-defined]
        for e in events
    )
    sent_msg = next(e for e in events if e.type == "message_sent")
    assert sent_msg.private is True and child in sent_msg.recipients  # type: ignore[attr-defined]
    _assert_suspect_sees_nothing(h)


async def test_closed_dms_are_reported_on_the_case_card(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.rest.closed_dms.add(KIDS[0])
    h.feed(frame("thread_create.json"))
    h.feed(frame("thread_members_update.json"))
    h.feed(frame("message_create_thread.json"))
    await h.settle()

    posted = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")[0]
    edits = h.rest.find("PATCH", f"/channels/{MOD_CHANNEL}/messages/{posted.response['id']}")
    assert edits, h.rest.paths()
    note = next(f for f in edits[-1].json["embeds"][0]["fields"] if "not delivered" in f["name"])
    assert str(KIDS[0]) in note["value"] and "DMs are closed" in note["value"]
    found = await h.engine.store.get_case(1)
    assert found is not None and any(a["action"] == "child_notice_undelivered" for a in found[2])
    # Delivery did not fail: nothing is left in the outbox to retry.
    assert await h.engine.store.pending_actions() == []


async def test_member_join_roles_reactions_edits_and_deletes_become_events(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.push(
        "guild_member_add.json",
        "message_create_mentions.json",
        "message_reaction_add.json",
        "message_update.json",
        "message_delete.json",
    )
    await h.settle()
    events = [e for _, e in await h.engine.store.events_after(0, 1000)]
    by_type: dict[str, list[Any]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
        assert e.platform == "discord" and e.community == str(GUILD)

    joined = by_type["member_joined"][0]
    assert joined.account == "1200000000000000020" and joined.account_created_at < joined.at
    ages = {(e.account, e.band, e.source) for e in by_type["age_declared"]}
    assert ("1200000000000000020", "minor", "role") in ages
    assert (str(KIDS[0]), "minor", "role") in ages and (str(SUSPECT), "adult", "role") in ages
    assert {e.account for e in by_type["region_declared"]} == {str(KIDS[0]), str(KIDS[3])}

    sent = by_type["message_sent"][0]
    # Normalised once: mentions dropped (not "@user", which groomguard.text would read as a _handle_ token),
    # the zero-width space is gone, and the mentioned ids sit in recipients.
    assert sent.text == "you all draw so well, dm me for free nitro"
    assert set(sent.recipients) == {str(k) for k in KIDS[1:]}
    kinds = sorted((e.target, e.kind) for e in by_type["contact_requested"])
    assert kinds == sorted([(str(k), "mention") for k in KIDS[1:]] + [(str(k), "dm") for k in KIDS[1:]])

    assert [(e.account, e.author) for e in by_type["reaction_added"]] == [(str(SUSPECT), str(KIDS[0]))]
    assert [(e.viewer, e.author) for e in by_type["content_viewed"]] == [(str(SUSPECT), str(KIDS[0]))]
    assert by_type["message_edited"][0].text == "you all draw so well! dm me add me"
    deleted = by_type["message_deleted"][0]
    assert deleted.message_id == "1300000000000000003" and deleted.author == str(SUSPECT)
