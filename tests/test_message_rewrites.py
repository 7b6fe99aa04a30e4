"""A message deleted, edited or sent again under one id within one transaction ends as if each event had been
written alone: the store's rows after the batch, and addressing's reads before it commits."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from groomguard.app.runtime import build_engine
from groomguard.events import AgeDeclared, BaseEvent, MessageDeleted, MessageEdited, MessageSent
from groomguard.records import Turn
from groomguard.state import CommunityState
from groomguard.testing import make_settings

START = datetime(2026, 3, 1, tzinfo=UTC)


def _base(prefix: str, n: int, minutes: int) -> dict[str, Any]:
    """What every event here shares: one community, one room, `minutes` after START."""
    at = START + timedelta(minutes=minutes)
    return {"event_id": f"{prefix}{n}", "platform": "t", "community": "c", "at": at, "conversation": "room"}


def _sent(n: int, message_id: str, text: str, minutes: int, author: str = "adult1") -> MessageSent:
    # Read by a child: text is kept only for messages that reach a minor (or private ones).
    base = _base("s", n, minutes)
    return MessageSent(**base, message_id=message_id, author=author, recipients=("kid1",), text=text)


def _deleted(n: int, message_id: str, minutes: int) -> MessageDeleted:
    return MessageDeleted(**_base("d", n, minutes), message_id=message_id)


def _edited(n: int, message_id: str, text: str, minutes: int) -> MessageEdited:
    return MessageEdited(**_base("x", n, minutes), message_id=message_id, author="adult1", text=text)


async def _rows_after(tmp_path: Path, first: list[BaseEvent], together: list[BaseEvent]) -> dict[str, Any]:
    """Commit `first`, then `together` as one batch (and so one transaction); the message tables after."""
    db = tmp_path / "g.db"
    engine = build_engine(make_settings(db, engine__batch_size=100, engine__batch_wait_ms=50), [])
    await engine.start()
    try:
        kid = AgeDeclared(
            event_id="age", platform="t", community="c", at=START, account="kid1", band="minor", source="role"
        )
        await engine.ingest([kid, *first])
        await engine.submit_many(together)
        await engine.drain()
    finally:
        await engine.stop()
    con = sqlite3.connect(db)
    try:
        return {
            "messages": con.execute("SELECT message_id, at, text FROM messages ORDER BY 1").fetchall(),
            "turns": con.execute("SELECT message_id, author, at FROM message_turns ORDER BY 1").fetchall(),
        }
    finally:
        con.close()


def _at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


async def test_deleted_then_sent_again_under_the_same_id_is_kept(tmp_path: Path) -> None:
    rows = await _rows_after(
        tmp_path,
        [_sent(1, "m1", "first words", 0)],
        [_deleted(2, "m1", 1), _sent(3, "m1", "said again", 2, author="adult2")],
    )
    assert rows == {"messages": [("m1", _at(2), "said again")], "turns": [("m1", "adult2", _at(2))]}


async def test_sent_deleted_and_sent_again_in_one_batch_is_kept(tmp_path: Path) -> None:
    rows = await _rows_after(
        tmp_path, [], [_sent(1, "m1", "first words", 0), _deleted(2, "m1", 1), _sent(3, "m1", "said again", 2)]
    )
    assert rows == {"messages": [("m1", _at(2), "said again")], "turns": [("m1", "adult1", _at(2))]}


async def test_an_edit_before_the_message_is_sent_again_does_not_overwrite_it(tmp_path: Path) -> None:
    rows = await _rows_after(
        tmp_path,
        [_sent(1, "m1", "first words", 0)],
        [_edited(2, "m1", "edited words", 1), _sent(3, "m1", "said again", 2)],
    )
    assert rows["messages"] == [("m1", _at(2), "said again")]


async def test_edits_apply_in_order_and_a_deletion_wins_over_earlier_ones(tmp_path: Path) -> None:
    rows = await _rows_after(
        tmp_path,
        [_sent(1, "m1", "first words", 0), _sent(2, "m2", "other words", 0)],
        [
            _sent(3, "m3", "new words", 1),
            _edited(4, "m3", "new words, edited", 2),
            _edited(5, "m1", "first edit", 2),
            _edited(6, "m1", "second edit", 3),
            _edited(7, "m2", "lost edit", 3),
            _deleted(8, "m2", 4),
            _edited(9, "m2", "edit after the deletion", 5),
        ],
    )
    assert rows["messages"] == [("m1", _at(0), "second edit"), ("m3", _at(1), "new words, edited")]
    assert [r[0] for r in rows["turns"]] == ["m1", "m3"]


class _Committed:
    """The store's answer for one committed turn, m1 by adult1."""

    def __init__(self) -> None:
        self.turn = Turn("adult1", START, "m1")

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        return [self.turn]

    async def message_author(self, community: str, message_id: str) -> str | None:
        return self.turn.author if message_id == "m1" else None


async def _accepted(community: str, account: str) -> set[str]:
    return set()


async def test_addressing_stops_seeing_a_deleted_message_before_its_batch_commits() -> None:
    state = CommunityState(_accepted, timedelta(days=30), reader=_Committed())  # type: ignore[arg-type]
    assert await state.message_author("c", "m1") == "adult1"
    state.apply(_sent(2, "m2", "in the batch", 1))
    state.apply(_deleted(3, "m1", 2))
    state.apply(_deleted(4, "m2", 3))
    assert await state.message_author("c", "m1") is None
    assert await state.message_author("c", "m2") is None
    assert list(await state.recent_turns("c", "room", START)) == []
    # Sent again under the same id: the new message is the one seen, not the committed one.
    state.apply(_sent(5, "m1", "again", 4, author="adult2"))
    assert await state.message_author("c", "m1") == "adult2"
    assert list(await state.recent_turns("c", "room", START)) == [Turn("adult2", START + timedelta(minutes=4), "m1")]
    state.settle()
    assert await state.message_author("c", "m1") == "adult1", "after the batch, reads are the store's again"
