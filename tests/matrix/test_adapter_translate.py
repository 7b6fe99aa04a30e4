"""The Matrix translator and command parser against recorded sync payloads (no homeserver needed)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from groomguard.actions import ModAlert, Reason
from groomguard.adapters.matrix import cards
from groomguard.adapters.matrix.commands import parse, reaction_meaning
from groomguard.adapters.matrix.translate import Translator, TranslatorConfig, strip_markup
from groomguard.events import (
    AgeBand,
    Answer,
    ContactAnswered,
    ContactKind,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    StandingDeclared,
)
from groomguard.findings import Evidence

PAYLOADS = Path(__file__).parent / "payloads"
BOT = "@smoke_bot:localhost"
ALICE, BOB = "@smoke_alice:localhost", "@smoke_bob:localhost"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def translator(**kw: Any) -> Translator:
    return Translator(TranslatorConfig(community="localhost", bot_user=BOT, **kw))


def room_id_of(payload: dict[str, Any]) -> str:
    return next(iter(payload["rooms"]["join"]))


def test_initial_sync_becomes_invites_answers_message_reaction_and_receipt() -> None:
    payload = load("sync_initial_bot.json")
    room = room_id_of(payload)
    t = translator(minor_rooms=frozenset({room}))
    batch = t.translate(payload, NOW)
    kinds = [type(e).__name__ for e in batch.events]
    assert batch.next_batch == payload["next_batch"]
    requests = [e for e in batch.events if isinstance(e, ContactRequested)]
    answers = [e for e in batch.events if isinstance(e, ContactAnswered)]
    # The bot's own invite is not a contact between people.
    assert [(r.source, r.target, r.kind) for r in requests] == [(ALICE, BOB, ContactKind.INVITE)] * 2
    assert [(a.source, a.target, a.answer) for a in answers] == [
        (ALICE, BOB, Answer.REJECTED),
        (ALICE, BOB, Answer.ACCEPTED),
    ]
    assert {r.request_id for r in requests} | {a.request_id for a in answers} == {f"{room}|{BOB}"}
    [message] = [e for e in batch.events if isinstance(e, MessageSent)]
    assert (message.author, message.text, message.private, message.recipients) == (BOB, "hi all", True, (ALICE,))
    [reaction] = [e for e in batch.events if isinstance(e, ReactionAdded)]
    assert (reaction.account, reaction.author, reaction.message_id) == (ALICE, BOB, message.message_id)
    [view] = [e for e in batch.events if isinstance(e, ContentViewed)]
    assert (view.viewer, view.author, view.content_id) == (ALICE, BOB, message.message_id)
    joined = {e.account for e in batch.events if isinstance(e, MemberJoined)}
    assert joined == {ALICE, BOB}  # never the bot itself
    ages = {(e.account, e.band) for e in batch.events if type(e).__name__ == "AgeDeclared"}
    # Alice created the room: its creator runs it, and gets no age band from it (issue 13).
    assert ages == {(BOB, AgeBand.MINOR)}
    assert "ContactRequested" in kinds and len({e.key for e in batch.events}) == len(batch.events)


def test_incremental_sync_uses_prev_content_and_dedupes_on_replay() -> None:
    t = translator()
    first = t.translate(load("sync_initial_bot.json"), NOW)
    again = translator().translate(load("sync_initial_bot.json"), NOW)
    assert [e.key for e in first.events] == [e.key for e in again.events]  # stable ids → store dedupes
    inc = t.translate(load("sync_invite_reject_accept_message_reaction_receipt.json"), NOW)
    answers = [(e.answer, e.source) for e in inc.events if isinstance(e, ContactAnswered)]
    assert answers == [(Answer.REJECTED, ALICE), (Answer.ACCEPTED, ALICE)]


def test_withdrawn_invite_is_not_a_rejection_and_edits_redactions_translate() -> None:
    t = translator()
    t.translate(load("sync_initial_bot.json"), NOW)
    room = room_id_of(load("sync_initial_bot.json"))
    payload = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                room: {
                    "timeline": {
                        "events": [
                            _member("$inv", ALICE, "@kid:localhost", "invite"),
                            _member("$wd", ALICE, "@kid:localhost", "leave", prev="invite"),
                            _msg("$m1", BOB, "hello"),
                            {
                                "type": "m.room.message",
                                "sender": BOB,
                                "event_id": "$e1",
                                "origin_server_ts": 1,
                                "content": {
                                    "msgtype": "m.text",
                                    "body": "* hi",
                                    "m.new_content": {"msgtype": "m.text", "body": "hi  there"},
                                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$m1"},
                                },
                            },
                            {
                                "type": "m.room.redaction",
                                "sender": BOB,
                                "event_id": "$r1",
                                "redacts": "$m1",
                                "content": {},
                            },
                            {
                                "type": "m.room.encrypted",
                                "sender": BOB,
                                "event_id": "$x",
                                "content": {"algorithm": "x"},
                            },
                            {"type": "m.room.message", "sender": BOB},  # malformed: no event id
                            "not an event",
                            {"type": "m.room.message", "sender": BOB, "event_id": "$bad", "content": {"body": 3}},
                        ]
                    }
                }
            }
        },
    }
    batch = t.translate(payload, NOW)
    [withdrawn] = [e for e in batch.events if isinstance(e, ContactAnswered)]
    assert (withdrawn.answer, withdrawn.source, withdrawn.target) == (Answer.WITHDRAWN, ALICE, "@kid:localhost")
    assert withdrawn.request_id == f"{room}|@kid:localhost"
    [edit] = [e for e in batch.events if isinstance(e, MessageEdited)]
    assert (edit.message_id, edit.text) == ("$m1", "hi there")
    [deleted] = [e for e in batch.events if isinstance(e, MessageDeleted)]
    assert (deleted.message_id, deleted.author) == ("$m1", BOB)
    assert t.skipped["encrypted"] == 1 and t.skipped["malformed"] == 3


def test_mod_room_reactions_and_commands_become_interactions_not_events() -> None:
    t = translator(mod_room="!mod:localhost")
    payload = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                "!mod:localhost": {
                    "state": {
                        "events": [
                            _member("$j1", BOT, BOT, "join"),
                            _member("$j2", "@mod:localhost", "@mod:localhost", "join"),
                            {
                                "type": "m.room.join_rules",
                                "state_key": "",
                                "sender": "@mod:localhost",
                                "event_id": "$jr",
                                "content": {"join_rule": "invite"},
                            },
                            {
                                "type": "m.room.power_levels",
                                "state_key": "",
                                "sender": "@mod:localhost",
                                "event_id": "$pl",
                                "content": {"users": {"@mod:localhost": 50}, "users_default": 0},
                            },
                        ]
                    },
                    "timeline": {
                        "events": [
                            {
                                "type": "m.reaction",
                                "sender": "@mod:localhost",
                                "event_id": "$re",
                                "content": {
                                    "m.relates_to": {"rel_type": "m.annotation", "event_id": "$card", "key": "✅"}
                                },
                            },
                            _msg("$c", "@mod:localhost", "!gg cases"),
                            _msg("$chat", "@mod:localhost", "just chatting"),
                        ]
                    },
                }
            }
        },
    }
    batch = t.translate(payload, NOW)
    # The only event: the mod room's moderator is declared, so they never count as a mutual contact.
    assert [(e.type, e.account, e.standing.value) for e in batch.events] == [  # type: ignore[attr-defined]
        ("standing_declared", "@mod:localhost", "moderator")
    ]
    assert batch.mod_room_changed
    assert t.translate(payload, NOW).events == []  # declared once
    assert [(i.kind, i.text) for i in batch.interactions] == [("reaction", "✅"), ("command", "!gg cases")]
    info = t.rooms["!mod:localhost"]
    assert info.join_rule == "invite" and info.power_of("@mod:localhost") == 50 and info.power_of("@x:y") == 0


def test_commands_reactions_text_and_card_rendering() -> None:
    assert parse("!gg case 12").case_id == 12
    assert parse("!gg age @a:b minor").band is AgeBand.MINOR
    assert parse("!gg age 13").name == "self_age" and parse("!gg age 13").band is AgeBand.MINOR
    assert parse("!gg age 200").error and parse("!gg forget bob").error and parse("!gg nope").error
    assert reaction_meaning("⬆️") == "escalate" and reaction_meaning("🔨") == "ban" and reaction_meaning("👍") is None
    assert strip_markup("> <@a:b> quoted\n\nim  13\u200d", True) == "im 13"
    alert = ModAlert(
        action_id="a",
        platform="matrix",
        community="c",
        case_id=3,
        version=2,
        suspect="@adult:x",
        risk=0.72,
        reasons=(Reason(detector="fan_out", text="started contact with <8> minors", score=0.7),),
        evidence=tuple(Evidence(kind="account", ref=f"@m{i}:x") for i in range(10)),
        children=("@m1:x",),
        at=NOW,
    )
    content = cards.alert_card(alert)
    assert "case #3" in content["body"] and "Contacting many children" in content["body"]
    assert "&lt;8&gt;" in content["formatted_body"] and "+2 more" in content["body"]
    edit = cards.replacement("$orig", content)
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$orig"}
    assert edit["m.new_content"]["body"] == content["body"]


def _member(event_id: str, sender: str, target: str, membership: str, prev: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "m.room.member",
        "sender": sender,
        "state_key": target,
        "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000,
        "content": {"membership": membership},
    }
    if prev:
        raw["unsigned"] = {"prev_content": {"membership": prev}}
    return copy.deepcopy(raw)


def _msg(event_id: str, sender: str, body: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": sender,
        "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000,
        "content": {"msgtype": "m.text", "body": body},
    }


def test_commands_in_community_rooms_are_ignored_and_bot_dms_are_private() -> None:
    t = translator(mod_room="!mod:localhost")
    kid, other = "@kid:localhost", "@someone:localhost"
    payload = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                "!public:localhost": {
                    "state": {
                        "events": [
                            _member("$p1", BOT, BOT, "join"),
                            _member("$p2", kid, kid, "join"),
                            _member("$p3", other, other, "join"),
                        ]
                    },
                    "timeline": {"events": [_msg("$age1", kid, "!gg age 13")]},
                },
                "!dm:localhost": {
                    "state": {"events": [_member("$d1", BOT, BOT, "join"), _member("$d2", kid, kid, "join")]},
                    "timeline": {"events": [_msg("$age2", kid, "!gg age 13")]},
                },
            }
        },
    }
    batch = t.translate(payload, NOW)
    # A reply in the public room would announce the child's age to everyone there, suspects included.
    assert [(i.room_id, i.in_dm) for i in batch.interactions] == [("!dm:localhost", True)]


def test_group_messages_carry_mentions_and_the_reply_authors_for_addressing() -> None:
    t = translator(layout_rooms=frozenset({"!general:localhost"}))
    people = ["@kid:localhost", "@adult:localhost", "@a:localhost", "@b:localhost"]
    pill = '<a href="https://matrix.to/#/@kid:localhost">kid</a> hi'
    kid_says = _msg("$k1", "@kid:localhost", "anyone on?")
    reply = _msg("$a1", "@adult:localhost", "> <@kid:localhost> anyone on?\n\nme")
    reply["content"]["m.relates_to"] = {"m.in_reply_to": {"event_id": "$k1"}}
    reply["content"]["m.mentions"] = {"user_ids": ["@kid:localhost", "@adult:localhost", 7]}
    pilled = _msg("$a2", "@adult:localhost", "kid hi")
    pilled["content"].update({"format": "org.matrix.custom.html", "formatted_body": pill})
    payload = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                "!general:localhost": {
                    "state": {
                        "events": [
                            {
                                "type": "m.room.create",
                                "state_key": "",
                                "sender": "@mod:localhost",
                                "event_id": "$create",
                                "content": {"room_version": "10"},
                            },
                            *(_member(f"$j{i}", p, p, "join") for i, p in enumerate([BOT, *people])),
                        ]
                    },
                    "timeline": {"events": [kid_says, reply, pilled]},
                }
            }
        },
    }
    batch = t.translate(payload, NOW)
    sent = {e.message_id: e for e in batch.events if isinstance(e, MessageSent)}
    assert not sent["$a1"].private and sent["$a1"].reply_to == "$k1"
    assert sent["$a1"].reply_to_author == "@kid:localhost"
    assert sent["$a1"].mentions == ("@kid:localhost",)  # the author and junk are dropped
    assert sent["$a1"].text == "me"
    assert sent["$a2"].mentions == ("@kid:localhost",) and sent["$a2"].reply_to_author is None
    # The creator of a community room is declared: they vouch for no one.
    standings = [(e.account, e.standing.value) for e in batch.events if isinstance(e, StandingDeclared)]
    assert standings == [("@mod:localhost", "creator")]
