"""Grooming in a private thread through the REAL detector registry and the shipped ONNX model.

Nothing is scripted here: `groomguard.engine.build_detectors(settings)` builds every registered detector,
`grooming_language` loads models/grooming.onnx, and the thread messages are recorded MESSAGE_CREATE
frames fed one by one to discord.py's own state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dpy_harness import GENERAL, KIDS, MOD_CHANNEL, SUSPECT, THREAD, Harness, discord_settings, frame
from groomguard.engine import build_detectors
from test_grooming_language import SLOW_GROOMING

pytestmark = pytest.mark.model

#: Synthetic lines written for this test: flattery, age/school/parents-home probing, secrecy,
#: "delete this", moving to Snapchat, asking for a picture.
THREAD_GROOMING = [
    "heyy ur drawings r honestly the best in this server",
    "u seem way more mature than the others, how old r u",
    "what school u go to? what year r u in",
    "r ur parents home rn or r u on ur own",
    "when do they get back from work",
    "dont tell anyone we talk ok, they wouldnt get it",
    "its just between us. delete this after u read it",
    "do u have snap? add me there its more private",
    "send me a pic of u, just for me",
    "delete this thread once uve added me",
]

#: Synthetic and blatant: probing, secrecy, another app, a photo request and a meeting in six messages.
BLATANT_THREAD = [
    "hey cutie how old r u",
    "r u home alone rn",
    "dont tell ur mum we talk ok",
    "add me on snap its more private",
    "send me a pic of u",
    "we could meet up this weekend, i can pick u up",
]


def _thread_message(index: int, text: str) -> dict[str, Any]:
    payload = frame("message_create_thread.json")
    d = payload["d"]
    d["id"] = str(1300000000000000100 + index)
    d["nonce"] = str(1349876543210987800 + index)
    d["content"] = text
    at = datetime(2026, 3, 2, 10, 5, tzinfo=UTC) + timedelta(minutes=index)
    d["timestamp"] = at.isoformat(timespec="microseconds")
    return payload


async def _converse(make_harness: Any, tmp_path: Path, lines: list[str]) -> Harness:
    detectors = build_detectors(discord_settings(tmp_path / "groomguard.db"))
    assert "grooming_language" in [d.name for d in detectors]
    h: Harness = await make_harness(detectors=detectors)
    await h.push("thread_create.json", "thread_members_update.json")
    for index, line in enumerate(lines):
        h.feed(_thread_message(index, line))
        await h.settle()  # one message at a time, as a live conversation arrives
    return h


async def _assert_child_notified(h: Harness) -> None:
    child = KIDS[0]
    opened = h.rest.find("POST", "/users/@me/channels")
    assert [c.json for c in opened] == [{"recipient_id": child}], h.rest.paths()
    dm = h.rest.find("POST", f"/channels/{opened[0].response['id']}/messages")
    # One notice, plus at most one more for each new serious stage (photos, a meeting) inside the 24 h
    # limit, never over notices.max_per_child_per_day (3).
    assert 1 <= len(dm) <= 3
    for later in dm[1:]:
        assert "photos or videos" in later.json["content"] or "meeting up" in later.json["content"]
    for sent in dm:
        body = sent.json
        assert "You have not done anything wrong" in body["content"] and str(SUSPECT) not in body["content"]
        assert body["allowed_mentions"] == {"parse": []}


async def _assert_child_notified_and_card_posted(h: Harness) -> None:
    child = KIDS[0]
    await _assert_child_notified(h)
    cards = [c for c in h.card_calls() if c.method == "POST"]
    assert len(cards) == 1, h.rest.paths()
    fields = cards[0].json["embeds"][0]["fields"]
    assert any(f["name"].startswith("Grooming language towards a child") for f in fields)
    assert any(f["name"].startswith("Children involved") and str(child) in f["value"] for f in fields)
    found = await h.engine.store.get_case(1)
    assert found is not None and found[0].suspect == str(SUSPECT)

    # The suspect sees nothing: no call into the thread or the channel, no DM to them.
    for call in h.rest.calls:
        assert not call.path.startswith((f"/channels/{THREAD}", f"/channels/{GENERAL}")), call
        if call.path == "/users/@me/channels":
            assert int(call.json["recipient_id"]) != SUSPECT
    assert all(c.path.startswith(f"/channels/{MOD_CHANNEL}") for c in h.card_calls())


async def test_blatant_grooming_in_a_thread_reaches_child_and_moderators_within_six_messages(
    make_harness: Any, tmp_path: Path
) -> None:
    # Issue 13's cadence: within six adult messages the child is warned and the mod card is posted.
    h = await _converse(make_harness, tmp_path, BLATANT_THREAD)
    await _assert_child_notified_and_card_posted(h)
    found = await h.engine.store.get_case(1)
    assert found is not None and "grooming_language" in found[0].reasons


async def test_slower_grooming_in_a_thread_still_warns_the_child(make_harness: Any, tmp_path: Path) -> None:
    # The model reads this chat-style wording as low risk, but probing followed by secrecy and another
    # app is the pattern itself: the child is warned even before the model agrees.
    h = await _converse(make_harness, tmp_path, THREAD_GROOMING)
    await _assert_child_notified(h)
    found = await h.engine.store.get_case(1)
    assert found is not None and "grooming_language" in found[0].reasons
    for call in h.rest.calls:
        assert not call.path.startswith((f"/channels/{THREAD}", f"/channels/{GENERAL}")), call


async def test_real_model_in_a_thread_dms_the_child_and_posts_a_card(make_harness: Any, tmp_path: Path) -> None:
    # The project's reference conversation for the real model (tests/test_grooming_language.py), sent
    # through Discord: the whole path — gateway frame, translation, registry, ONNX, outbox, REST.
    h = await _converse(make_harness, tmp_path, SLOW_GROOMING)
    await _assert_child_notified_and_card_posted(h)
    found = await h.engine.store.get_case(1)
    assert found is not None
    reason = found[0].reasons["grooming_language"]
    assert reason["score"] >= 0.9 and "secrecy" in reason["text"]
