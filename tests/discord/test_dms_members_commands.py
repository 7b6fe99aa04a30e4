"""DMs to the bot, member leave and role changes, the remaining /groomguard commands, Kick, and held notices."""

from __future__ import annotations

from typing import Any

from dpy_harness import (
    BOT_ID,
    GUILD,
    KIDS,
    MOD_CHANNEL,
    MODERATOR,
    SUSPECT,
    Harness,
    ScriptedLanguageDetector,
    frame,
)
from groomguard.detectors.fan_out import FanOutDetector, FanOutSettings

EPHEMERAL = 64
DM_CHANNEL = 1100000000000000090
KID_CAL = KIDS[2]


async def _events(h: Harness, kind: str) -> list[Any]:
    return [e for _, e in await h.engine.store.events_after(0, 1000) if e.type == kind]


async def _audit(h: Harness) -> list[dict[str, Any]]:
    async with h.engine.store.db.execute("SELECT actor, action, case_id, detail FROM audit ORDER BY id") as cur:  # type: ignore[attr-defined]
        return [dict(r) for r in await cur.fetchall()]


def _dm(content: str, message_id: int = 1300000000000000090, author: int = KIDS[0]) -> dict[str, Any]:
    payload = frame("message_create_dm.json")
    payload["d"]["id"] = str(message_id)
    payload["d"]["content"] = content
    payload["d"]["author"]["id"] = str(author)
    return payload


async def _card(h: Harness) -> None:
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    assert h.card_calls(), h.rest.paths()


# -- DMs to the bot --------------------------------------------------------------------------


async def test_dm_with_a_self_declared_age_is_recorded_and_acknowledged(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(_dm("I'm 13", author=KIDS[0]))
    await h.settle()

    declared = [e for e in await _events(h, "age_declared") if e.source == "self"]
    assert [(e.account, e.band, e.age, e.community) for e in declared] == [(str(KIDS[0]), "minor", 13, str(GUILD))]
    sent = next(e for e in await _events(h, "message_sent") if e.author == str(KIDS[0]))
    assert sent.private and sent.conversation == f"dm:{KIDS[0]}" and sent.recipients == (str(BOT_ID),)
    # The only REST call is the reply in the same DM channel: nothing in the guild, nothing to anyone else.
    assert [(c.method, c.path) for c in h.rest.calls] == [("POST", f"/channels/{DM_CHANNEL}/messages")]
    assert "noted" in h.rest.calls[0].json["content"]


async def test_dm_report_is_acknowledged_and_forwarded_to_moderators_only(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(_dm("I want to report someone, adult_alex keeps messaging me", message_id=1300000000000000091))
    await h.settle()

    paths = [(c.method, c.path) for c in h.rest.calls]
    assert paths == [("POST", f"/channels/{MOD_CHANNEL}/messages"), ("POST", f"/channels/{DM_CHANNEL}/messages")]
    report = h.rest.calls[0].json
    assert report["allowed_mentions"] == {"parse": []} and not report.get("components")
    embed = report["embeds"][0]
    assert embed["title"] == "Report sent to GroomGuard by DM" and str(KIDS[0]) in embed["description"]
    assert "Thank you for telling us" in h.rest.calls[1].json["content"]
    # The reported account is never contacted: no DM channel opened, no guild call, no reaction.
    assert not h.rest.find("POST", "/users/@me/channels")
    assert all(str(SUSPECT) not in c.path for c in h.rest.calls)
    assert not [e for e in await _events(h, "age_declared") if e.source == "self"]
    audit = [a for a in await _audit(h) if a["action"] == "dm_report"]
    assert [a["actor"] for a in audit] == [str(KIDS[0])]
    assert "keeps messaging" not in audit[0]["detail"]  # ids only: the report's words stay in Discord


async def test_dm_from_someone_outside_the_protected_servers_is_ignored(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(_dm("I'm 13", message_id=1300000000000000092, author=1299999999999999999))
    await h.settle()
    assert h.rest.calls == [] and await _events(h, "message_sent") == []


# -- members ---------------------------------------------------------------------------------


async def test_member_leave_becomes_member_left(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.push("guild_member_remove.json")
    await h.settle()
    left = await _events(h, "member_left")
    assert [(e.account, e.community) for e in left] == [(str(KIDS[4]), str(GUILD))]


async def test_live_age_role_added_declares_and_removed_keeps_the_band(make_harness: Any) -> None:
    h: Harness = await make_harness()
    # kid_cal goes from 16-17 to 13-15: the added role is a declaration from a role.
    await h.push("guild_member_update.json")
    await h.settle()
    live = [e for e in await _events(h, "age_declared") if e.account == str(KID_CAL) and ":sweep" not in e.event_id]
    assert [(e.band, e.source) for e in live] == [("minor", "role")]

    # Then every age role is removed: nothing is declared, and the child stays recorded as a minor.
    update = frame("guild_member_update.json")
    update["d"]["roles"] = []
    h.feed(update)
    await h.settle()
    live = [e for e in await _events(h, "age_declared") if e.account == str(KID_CAL) and ":sweep" not in e.event_id]
    assert len(live) == 1
    account = await h.engine.state.account(str(GUILD), str(KID_CAL))
    assert account.is_minor and account.band_source == "role"
    assert h.rest.calls == [], "a role change is never answered in Discord"


# -- /groomguard case, forget, status ---------------------------------------------------------


async def test_slash_case_shows_the_card_ephemerally(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await _card(h)
    h.slash("interaction_slash_case.json")
    await h.settle()
    shown = h.rest.callbacks()[-1]
    assert shown["type"] == 4 and shown["data"]["flags"] == EPHEMERAL
    embed = shown["data"]["embeds"][0]
    assert embed["title"].startswith("Case #1 · risk ") and str(SUSPECT) in embed["description"]
    card = await h.adapter.cards.card(1)  # type: ignore[union-attr]
    assert card is not None
    link = next(f for f in embed["fields"] if f["name"] == "Card")["value"]
    assert link == f"https://discord.com/channels/{GUILD}/{MOD_CHANNEL}/{card.message_id}"


async def test_slash_case_for_an_unknown_case_says_so(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.slash("interaction_slash_case.json")
    await h.settle()
    assert h.rest.callbacks()[-1]["data"]["content"] == "No case #1 in this server."


async def test_slash_forget_erases_data_and_deletes_cards(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await _card(h)
    card = await h.adapter.cards.card(1)  # type: ignore[union-attr]
    assert card is not None
    h.slash("interaction_slash_forget.json")
    await h.settle()

    assert h.rest.callbacks()[-1]["type"] == 5  # deferred, ephemeral, while erasing
    assert h.rest.callbacks()[-1]["data"]["flags"] == EPHEMERAL
    assert h.rest.find("DELETE", f"/channels/{MOD_CHANNEL}/messages/{card.message_id}")
    done = h.rest.followups()[-1]
    assert done["content"].startswith("Erased ") and "1 alert card(s)" in done["content"]
    assert done["allowed_mentions"] == {"parse": []}
    assert await h.adapter.cards.card(1) is None  # type: ignore[union-attr]
    assert await h.engine.store.get_case(1) is None
    assert all(e.author != str(SUSPECT) for e in await _events(h, "message_sent"))
    forgot = [a for a in await _audit(h) if a["action"] == "forget_requested"]
    assert forgot and forgot[-1]["actor"] == str(MODERATOR)


async def test_slash_status_reports_checks_and_engine(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await _card(h)
    h.slash("interaction_slash_status.json")
    await h.settle()
    shown = h.rest.callbacks()[-1]
    assert shown["data"]["flags"] == EPHEMERAL
    embed = shown["data"]["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert embed["title"] == "GroomGuard status" and fields["Start-up checks"] == "all passed"
    assert "alerts 1" in fields["Engine"] and "delivery errors 0" in fields["Engine"]


# -- Kick ------------------------------------------------------------------------------------


async def test_moderator_kick_asks_for_confirmation_then_kicks_with_reason(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await _card(h)
    h.press("gg:1:kick", message=h.card_message())
    await h.settle()
    ask = h.rest.callbacks()[-1]
    assert ask["data"]["flags"] == EPHEMERAL and ask["data"]["content"].startswith("Kick ")
    assert [c["custom_id"] for row in ask["data"]["components"] for c in row["components"]] == [
        "gg:1:kickok",
        "gg:1:kickcancel",
    ]
    assert not h.rest.find("DELETE", f"/guilds/{GUILD}/members/{SUSPECT}"), "no kick before confirming"

    confirm = h.rest._message(MOD_CHANNEL, ask["data"], 1700000000000000011)
    confirm["flags"] = EPHEMERAL
    h.press("gg:1:kickok", message=confirm)
    await h.settle()
    assert h.rest.callbacks()[-1]["type"] == 9, "Yes, kick asks for the reason in a modal first"
    assert not h.rest.find("DELETE", f"/guilds/{GUILD}/members/{SUSPECT}")
    h.submit_modal("gg-note:1:kickok", "new account messaging children", message=confirm)
    await h.settle()
    kicks = h.rest.find("DELETE", f"/guilds/{GUILD}/members/{SUSPECT}")
    assert len(kicks) == 1
    # The reason travels as X-Audit-Log-Reason (discord.py's `reason=`), so Discord's audit log has it.
    assert kicks[0].reason == f"GroomGuard case #1: kick by moderator (moderator {MODERATOR}, via GroomGuard)"
    assert "kick recorded" in h.rest.followups()[-1]["content"]
    actions = [(a["actor"], a["action"]) for a in await _audit(h)]
    assert (str(MODERATOR), "kick") in actions and (str(MODERATOR), "discord_kick_applied") in actions
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].status == "confirmed"


async def test_kick_cancel_does_nothing(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await _card(h)
    h.press("gg:1:kick", message=h.card_message())
    await h.settle()
    confirm = h.rest._message(MOD_CHANNEL, h.rest.callbacks()[-1]["data"], 1700000000000000012)
    confirm["flags"] = EPHEMERAL
    h.press("gg:1:kickcancel", message=confirm)
    await h.settle()
    assert h.rest.callbacks()[-1]["data"]["content"] == "Kick cancelled; nothing was done."
    assert not h.rest.find("DELETE", f"/guilds/{GUILD}/members/{SUSPECT}")


# -- a child notice that fails before any card exists -----------------------------------------


async def test_notice_to_closed_dms_before_any_card_tells_moderators_then_the_first_card(make_harness: Any) -> None:
    # A finding under the alert threshold: the child is notified, but the case has no card yet.
    detectors = [FanOutDetector(FanOutSettings(min_minors=3, saturate_minors=6)), ScriptedLanguageDetector(0.45)]
    h: Harness = await make_harness(detectors=detectors)
    h.rest.closed_dms.add(KIDS[0])
    await h.push("thread_create.json", "thread_members_update.json", "message_create_thread.json")
    await h.settle()

    assert h.card_calls() == [], "under the threshold: no card yet"
    notes = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")
    assert len(notes) == 1
    embed = notes[0].json["embeds"][0]
    assert embed["title"] == "Case #1 · child notice not delivered" and str(KIDS[0]) in embed["description"]
    assert notes[0].json["allowed_mentions"] == {"parse": []}
    assert str(SUSPECT) not in embed["description"]
    assert await h.engine.store.pending_actions() == []

    # The case later crosses the threshold (fan-out): its first card carries the undelivered note.
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    first = h.card_calls()[0].json["embeds"][0]
    note = next(f for f in first["fields"] if "not delivered" in f["name"])
    assert str(KIDS[0]) in note["value"]
