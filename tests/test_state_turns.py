"""`CommunityState.recent_turns` (and its lazy newest-first walk) merge committed and uncommitted room turns
exactly: late turns, repeated ids and time ties included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from groomguard.events import MessageSent
from groomguard.records import Turn
from groomguard.state import TURNS_READ, CommunityState

START = datetime(2026, 3, 1, tzinfo=UTC)


class _Committed:
    """The store's answer for committed turns: the newest `limit` since `since`, oldest first."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.at, t.message_id))

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        return [t for t in self.turns if t.at >= since][-limit:]


def _expected(committed: list[Turn], uncommitted: list[Turn], since: datetime) -> list[Turn]:
    """What the room looks like: every turn since `since` once (the committed copy of an id repeated within
    the committed turns read, which are the newest TURNS_READ)."""
    read = sorted((t for t in committed if t.at >= since), key=lambda t: (t.at, t.message_id))[-TURNS_READ:]
    ids = {t.message_id for t in read}
    pool = read + [t for t in uncommitted if t.at >= since and t.message_id not in ids]
    return sorted(pool, key=lambda t: (t.at, t.message_id))[-TURNS_READ:]


async def _accepted(community: str, account: str) -> set[str]:
    return set()


async def test_recent_turns_equals_a_plain_merge_on_random_rooms() -> None:
    rng = random.Random(7)
    for case in range(300):
        committed_n, uncommitted_n = rng.choice((0, 3, 40)), rng.choice((0, 5, 50))
        overlap = case % 3 == 0  # uncommitted turns older than committed ones, as late events make them
        repeat = case % 7 == 0  # a message id sent again
        committed = [
            Turn(
                f"u{rng.randrange(4)}", START + timedelta(minutes=10 * (i // (2 if case % 5 == 0 else 1))), f"c{i:02d}"
            )
            for i in range(committed_n)
        ]
        first = 0 if overlap else 10 * committed_n
        state = CommunityState(_accepted, timedelta(days=30), reader=_Committed(committed))  # type: ignore[arg-type]
        uncommitted = []
        for i in range(uncommitted_n):
            message_id = f"c{i:02d}" if repeat and committed and i < 2 else f"n{i}"
            at = START + timedelta(minutes=first + 7 * i + rng.randrange(3))
            event = MessageSent(
                event_id=f"e{case}-{i}",
                platform="t",
                community="c",
                at=at,
                message_id=message_id,
                author=f"u{rng.randrange(4)}",
                conversation="room",
            )
            state.apply(event)
            uncommitted.append(Turn(event.author, at, message_id))
        for since in (START, START + timedelta(minutes=rng.randrange(600)), START + timedelta(days=9)):
            expected = _expected(committed, uncommitted, since)
            assert list(await state.recent_turns("c", "room", since)) == expected, (case, since)
            newest = await state.turns_newest_first("c", "room", since)
            assert list(newest) == expected[::-1], (case, since)


async def test_one_message_id_twice_at_one_time_in_a_room_is_kept_in_order() -> None:
    """Two events for one message (same id and time, other authors) must not break the room's order."""
    state = CommunityState(_accepted, timedelta(days=30), reader=_Committed([]))  # type: ignore[arg-type]
    sent = [("m2", "a", 1), ("m1", "b", 0), ("m1", "a", 0)]
    for i, (message_id, author, minutes) in enumerate(sent):
        state.apply(
            MessageSent(
                event_id=f"e{i}",
                platform="t",
                community="c",
                at=START + timedelta(minutes=minutes),
                message_id=message_id,
                author=author,
                conversation="room",
            )
        )
    turns = await state.recent_turns("c", "room", START)
    assert [(t.message_id, t.at) for t in turns] == [
        ("m1", START),
        ("m1", START),
        ("m2", START + timedelta(minutes=1)),
    ]
