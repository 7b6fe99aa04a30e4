"""Moderator controls on alert cards: permission checks, ban with confirmation, timeout, evidence, and restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dpy_harness import BYSTANDER, GUILD, KIDS, MOD_CHANNEL, MODERATOR, SUSPECT, Harness, stop

EPHEMERAL = 64


async def _card(make_harness: Any) -> Harness:
    """A harness with case #1 on a posted card (fan-out by the suspect)."""
    h: Harness = await make_harness()
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    assert h.card_calls(), h.rest.paths()
    return h


async def _audit(h: Harness) -> list[dict[str, Any]]:
    async with h.engine.store.db.execute("SELECT actor, action, case_id, detail FROM audit ORDER BY id") as cur:  # type: ignore[attr-defined]
        return [dict(r) for r in await cur.fetchall()]


async def test_moderator_ban_asks_for_confirmation_then_bans_with_reason(make_harness: Any) -> None:
    h = await _card(make_harness)
    h.press("gg:1:ban", message=h.card_message())
    await h.settle()
    ask = h.rest.callbacks()[-1]
    assert ask["type"] == 4 and ask["data"]["flags"] == EPHEMERAL
    confirm_ids = [c["custom_id"] for row in ask["data"]["components"] for c in row["components"]]
    assert confirm_ids == ["gg:1:banok", "gg:1:bancancel"]
    assert not [c for c in h.rest.calls if c.method == "PUT" and "/bans/" in c.path], "no ban before confirming"

    confirm_message = h.rest._message(MOD_CHANNEL, ask["data"], 1700000000000000001)
    confirm_message["flags"] = EPHEMERAL
    h.press("gg:1:banok", message=confirm_message)
    await h.settle()
    # "Yes, ban" opens the note modal (interaction response type 9); nothing is banned before it is sent.
    modal = h.rest.callbacks()[-1]
    assert modal["type"] == 9 and modal["data"]["custom_id"] == "gg-note:1:banok"
    assert not h.rest.find("PUT", f"/guilds/{GUILD}/bans/{SUSPECT}")
    h.submit_modal("gg-note:1:banok", "asked two children for photos", message=confirm_message)
    await h.settle()

    bans = h.rest.find("PUT", f"/guilds/{GUILD}/bans/{SUSPECT}")
    assert len(bans) == 1
    assert bans[0].reason is not None and bans[0].reason.startswith("GroomGuard case #1: ban by moderator")
    assert str(MODERATOR) in bans[0].reason
    # Evidence is kept: Discord is told to delete none of the suspect's messages.
    assert bans[0].params == {"delete_message_seconds": 0}
    assert h.rest.callbacks()[-1]["type"] == 7  # the confirmation message is replaced, buttons gone
    assert "ban recorded" in h.rest.followups()[-1]["content"]

    final = h.card_calls()[-1].json
    assert final["embeds"][0]["title"].endswith(" · banned")
    assert [c["custom_id"] for row in final["components"] for c in row["components"]] == ["gg:1:evidence"]
    actions = [(a["actor"], a["action"]) for a in await _audit(h)]
    assert (str(MODERATOR), "ban") in actions and (str(MODERATOR), "discord_ban_applied") in actions


async def test_non_moderator_pressing_ban_is_refused_and_audited(make_harness: Any) -> None:
    h = await _card(make_harness)
    before = len(h.rest.calls)
    h.press("gg:1:ban", user=BYSTANDER, message=h.card_message())
    await h.settle()
    refusal = h.rest.callbacks()[-1]
    assert refusal["type"] == 4 and refusal["data"]["flags"] == EPHEMERAL
    assert "Only GroomGuard moderators" in refusal["data"]["content"]
    assert "components" not in refusal["data"] or not refusal["data"]["components"]
    # Nothing else happened: no ban, no card edit.
    assert [c for c in h.rest.calls[before:] if c.via == "http"] == []
    audit = await _audit(h)
    assert audit[-1]["actor"] == str(BYSTANDER) and audit[-1]["action"] == "refused" and audit[-1]["case_id"] == 1
    # Even the confirm step's custom id is checked on its own (it could be replayed).
    confirm = {"type": 1, "components": [{"type": 2, "style": 4, "label": "Yes, ban", "custom_id": "gg:1:banok"}]}
    replayed = h.rest._message(MOD_CHANNEL, {"components": [confirm], "flags": EPHEMERAL}, 1700000000000000002)
    h.press("gg:1:banok", user=BYSTANDER, message=replayed)
    await h.settle()
    assert [a["action"] for a in await _audit(h)].count("refused") == 2
    assert not h.rest.find("PUT", f"/guilds/{GUILD}/bans/{SUSPECT}")
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "open"


async def test_moderator_role_or_manage_server_is_enough(make_harness: Any) -> None:
    h = await _card(make_harness)
    # A member without the moderator role but with Manage Server may act.
    h.press("gg:1:escalate", user=BYSTANDER, message=h.card_message(), permissions=1 << 5)
    await h.settle()
    h.submit_modal("gg-note:1:escalate", "", user=BYSTANDER, message=h.card_message(), permissions=1 << 5)
    await h.settle()
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "escalated"


async def test_timeout_select_applies_the_chosen_duration(make_harness: Any) -> None:
    h = await _card(make_harness)
    started = datetime.now(UTC)
    h.press("gg:1:timeout", message=h.card_message(), values=["1440"])
    await h.settle()
    patches = h.rest.find("PATCH", f"/guilds/{GUILD}/members/{SUSPECT}")
    assert len(patches) == 1
    until = datetime.fromisoformat(patches[0].json["communication_disabled_until"])
    assert timedelta(hours=23, minutes=59) < until - started < timedelta(hours=24, minutes=1)
    assert patches[0].reason is not None and "GroomGuard case #1: timeout" in patches[0].reason


async def test_view_evidence_is_ephemeral(make_harness: Any) -> None:
    h = await _card(make_harness)
    h.press("gg:1:evidence", message=h.card_message())
    await h.settle()
    shown = h.rest.callbacks()[-1]
    assert shown["data"]["flags"] == EPHEMERAL
    body = shown["data"]["embeds"][0]["description"]
    assert str(KIDS[1]) in body and str(KIDS[4]) in body


async def test_buttons_on_old_cards_work_after_a_restart(make_harness: Any) -> None:
    first = await _card(make_harness)
    old_card = first.card_message()
    old_id = old_card["id"]
    await stop(first)

    second: Harness = await make_harness()  # a new bot, a new engine, the same database
    assert second.bot is not first.bot
    second.press("gg:1:confirm", message=old_card)
    await second.settle()
    found = await second.engine.store.get_case(1)
    assert found is not None and found[0].status == "confirmed"
    # The card posted before the restart is the one edited (its id came from the adapter's table).
    edits = second.rest.find("PATCH", f"/channels/{MOD_CHANNEL}/messages/{old_id}")
    assert edits and edits[-1].json["embeds"][0]["title"].endswith(" · confirmed")
    assert "confirmed" in second.rest.followups()[-1]["content"]


async def test_dismiss_asks_for_a_required_note_and_keeps_it_on_the_record(make_harness: Any) -> None:
    h = await _card(make_harness)
    h.press("gg:1:dismiss", message=h.card_message())
    await h.settle()
    modal = h.rest.callbacks()[-1]
    assert modal["type"] == 9, "Dismiss answers with a modal"
    assert modal["data"]["custom_id"] == "gg-note:1:dismiss" and modal["data"]["title"] == "Dismiss case #1"
    inputs = [c for row in modal["data"]["components"] for c in row["components"]]
    assert [(i["type"], i["custom_id"], i["style"], i["required"]) for i in inputs] == [(4, "note", 2, True)]
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "open", "nothing is decided before the note is sent"

    h.submit_modal("gg-note:1:dismiss", "  her uncle;\n the family confirmed  ", message=h.card_message())
    await h.settle()
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "dismissed"
    row = [a for a in await _audit(h) if a["action"] == "dismiss"]
    assert len(row) == 1 and row[0]["actor"] == str(MODERATOR)
    assert json.loads(row[0]["detail"])["note"] == "her uncle; the family confirmed"
    assert "Your note is on the case record" in h.rest.followups()[-1]["content"]
    assert h.card_calls()[-1].json["embeds"][0]["title"].endswith(" · dismissed")


async def test_escalate_note_is_optional_and_a_non_moderator_submit_is_refused(make_harness: Any) -> None:
    h = await _card(make_harness)
    h.press("gg:1:escalate", message=h.card_message())
    await h.settle()
    inputs = [c for row in h.rest.callbacks()[-1]["data"]["components"] for c in row["components"]]
    assert inputs[0]["required"] is False
    # A forged submit from someone who is not a moderator changes nothing and is audited.
    h.submit_modal("gg-note:1:escalate", "looks bad", user=BYSTANDER, message=h.card_message())
    await h.settle()
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "open"
    assert (await _audit(h))[-1]["action"] == "refused"
    h.submit_modal("gg-note:1:escalate", "", message=h.card_message())
    await h.settle()
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "escalated"


async def test_a_note_submitted_after_a_restart_still_decides(make_harness: Any) -> None:
    first = await _card(make_harness)
    first.press("gg:1:dismiss", message=first.card_message())
    await first.settle()
    old_card = first.card_message()
    await stop(first)
    second: Harness = await make_harness()  # the modal was opened by the old process
    second.submit_modal("gg-note:1:dismiss", "false alarm: a coach", message=old_card)
    await second.settle()
    found = await second.engine.store.get_case(1)
    assert found is not None and found[0].status == "dismissed"
