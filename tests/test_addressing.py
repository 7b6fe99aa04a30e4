"""groomguard.addressing on a real engine and SQLite store: replies, mentions and turns address someone; a
coach's broadcast and chatter address no one; the memory survives a restart and is erased by forget.

`Probe` is a detector that calls `addressees` from `inspect`, exactly where grooming_language will,
so the reads see the batch being processed as well as what is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from groomguard.addressing import Addressee, AddressingSettings, addressees
from groomguard.app.runtime import build_engine
from groomguard.detectors.base import DetectorState
from groomguard.events import BaseEvent, MessageSent
from groomguard.findings import Finding
from groomguard.testing import EventFactory, MemorySink, make_settings


class Probe:
    """Records what `addressees` says for every message the engine feeds it."""

    name: ClassVar[str] = "probe"
    enabled: ClassVar[bool] = True
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)

    def __init__(self, settings: AddressingSettings | None = None) -> None:
        self.settings = settings or AddressingSettings()
        self.seen: dict[str, list[Addressee]] = {}

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        assert isinstance(event, MessageSent)
        self.seen[event.message_id] = await addressees(event, state, self.settings)
        return ()


async def run(db: Path, events: list[BaseEvent], probe: Probe | None = None, one_batch: bool = False) -> Probe:
    probe = probe or Probe()
    engine = build_engine(make_settings(db), [MemorySink()], detectors=[probe])
    await engine.start()
    try:
        if one_batch:
            await engine.ingest(events)
        else:
            for event in events:
                await engine.ingest([event])
    finally:
        await engine.stop()
    return probe


def cast(f: EventFactory) -> list[BaseEvent]:
    out: list[BaseEvent] = [f.joined("coach"), f.adult("coach"), f.joined("adult"), f.adult("adult")]
    for kid in ("amy", "ben", "cas", "dee"):
        out += [f.joined(kid), f.minor(kid)]
    return out


def how(found: list[Addressee]) -> list[tuple[str, str, float]]:
    return [(a.account, a.how, a.weight) for a in found]


@pytest.mark.parametrize("one_batch", [False, True])
async def test_a_reply_addresses_the_author_of_the_message_replied_to(db: Path, one_batch: bool) -> None:
    f = EventFactory()
    kid_says = f.message("amy", "anyone on tonight?")
    reply = f.message("adult", "im on, u play?", reply_to=kid_says.message_id)
    probe = await run(db, [*cast(f), kid_says, reply], one_batch=one_batch)
    assert how(probe.seen[reply.message_id]) == [("amy", "reply", 0.8)]
    assert probe.seen[kid_says.message_id] == []  # nobody addressed: first message in the room


async def test_reply_targets_survive_a_restart_and_the_adapters_author_wins(db: Path) -> None:
    f = EventFactory()
    kid_says = f.message("amy", "gg")
    await run(db, [*cast(f), kid_says])
    # A new engine on the same file: the reply target comes from the store.
    late = f.message("adult", "well played", reply_to=kid_says.message_id, at=f.tick(hours=5))
    resolved = f.message("adult", "and u", reply_to="unknown-msg", reply_to_author="ben")
    probe = await run(db, [late, resolved])
    assert how(probe.seen[late.message_id]) == [("amy", "reply", 0.8)]
    assert how(probe.seen[resolved.message_id]) == [("ben", "reply", 0.8)]


async def test_a_mention_of_one_child_addresses_that_child(db: Path) -> None:
    f = EventFactory()
    message = f.message("adult", "u were great today", mentions=("ben",))
    probe = await run(db, [*cast(f), message])
    assert how(probe.seen[message.message_id]) == [("ben", "mention", 0.7)]


async def test_a_coach_posting_practice_times_to_several_children_addresses_no_one(db: Path) -> None:
    f = EventFactory()
    practice = f.message("coach", "practice moved to 5pm on friday", mentions=("amy", "ben", "cas"))
    answer = f.message("amy", "ok coach", reply_to=practice.message_id)
    everyone = f.message("coach", "thanks all", mentions=tuple(f"fan{i}" for i in range(6)))
    probe = await run(db, [*cast(f), practice, answer, everyone])
    assert probe.seen[practice.message_id] == []
    assert probe.seen[everyone.message_id] == []  # six accounts of any age: a broadcast too
    # The child's answer addresses the coach: a reply, ordinary and harmless on its own.
    assert how(probe.seen[answer.message_id]) == [("coach", "reply", 0.8)]


async def test_two_children_and_one_adult_named_is_not_a_broadcast(db: Path) -> None:
    f = EventFactory()
    message = f.message("adult", "u two free later?", mentions=("amy", "ben", "coach"))
    probe = await run(db, [*cast(f), message])
    assert sorted(a.account for a in probe.seen[message.message_id]) == ["amy", "ben", "coach"]


async def test_alternating_turns_with_one_child_address_that_child(db: Path) -> None:
    f = EventFactory()
    talk = [
        f.message("amy", "im so bored", at=f.tick(minutes=1)),
        f.message("adult", "same lol", at=f.tick(minutes=1)),
        f.message("amy", "what r u doing", at=f.tick(minutes=1)),
        f.message("adult", "nothing much, u?", at=f.tick(minutes=1)),
    ]
    probe = await run(db, [*cast(f), *talk])
    assert [how(probe.seen[m.message_id]) for m in talk] == [
        [],
        [],  # one switch only: an answer to the last speaker is not yet a conversation
        [("adult", "turns", 0.5)],
        [("amy", "turns", 0.5)],
    ]


async def test_turns_need_the_room_to_themselves_and_a_short_window(db: Path) -> None:
    f = EventFactory()
    crowded = [
        f.message("amy", "hi", at=f.tick(minutes=1)),
        f.message("adult", "hey", at=f.tick(minutes=1)),
        f.message("ben", "yo", at=f.tick(minutes=1)),
        f.message("adult", "whats up", at=f.tick(minutes=1)),
    ]
    slow = [
        f.message("cas", "hi", conversation="quiet", at=f.tick(minutes=30)),
        f.message("adult", "hey", conversation="quiet", at=f.tick(minutes=30)),
        f.message("cas", "anyone?", conversation="quiet", at=f.tick(minutes=30)),
    ]
    probe = await run(db, [*cast(f), *crowded, *slow])
    assert probe.seen[crowded[-1].message_id] == []
    assert probe.seen[slow[-1].message_id] == []
    # A longer window joins the slow exchange into turns.
    wide = Probe(AddressingSettings(turns_window_minutes=90))
    probe = await run(db.with_name("wide.db"), [*cast(f), *slow], wide)
    assert how(probe.seen[slow[-1].message_id]) == [("adult", "turns", 0.5)]


async def test_private_messages_are_left_to_their_recipients(db: Path) -> None:
    f = EventFactory()
    dm = f.message("adult", "hey", conversation="dm", private=True, recipients=("amy",), mentions=("amy",))
    probe = await run(db, [*cast(f), dm])
    assert probe.seen[dm.message_id] == []


async def test_forget_erases_the_memory_of_who_wrote_what(db: Path) -> None:
    f = EventFactory()
    kid_says = f.message("amy", "gg")
    engine = build_engine(make_settings(db), [MemorySink()], detectors=[])
    await engine.start()
    await engine.ingest([*cast(f), kid_says])
    assert await engine.state.message_author("test-community", kid_says.message_id) == "amy"
    removed = await engine.forget("amy")
    assert removed["message_turns"] == 1
    assert await engine.state.message_author("test-community", kid_says.message_id) is None
    await engine.stop()


async def test_old_turns_are_purged_with_message_retention(db: Path) -> None:
    f = EventFactory()
    old = f.message("amy", "hi")
    later = f.message("ben", "later", at=f.tick(days=340))
    # Retention runs on the wall clock (issue 12; tests keep 365 days): "now" is a year after `old`.
    engine = build_engine(make_settings(db), [MemorySink()], detectors=[], clock=lambda: old.at + timedelta(days=366))
    await engine.start()
    await engine.ingest([*cast(f), old, later])
    await engine.purge()  # (the engine may already have purged on its own batch count: check the state)
    assert await engine.state.message_author("test-community", old.message_id) is None
    assert await engine.state.message_author("test-community", later.message_id) == "ben"
    await engine.stop()
