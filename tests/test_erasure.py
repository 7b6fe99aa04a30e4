"""Complete erasure (issue 12 item 5): after `forget`, the id is in no byte of the database, its WAL, or memory."""

from __future__ import annotations

import sqlite3
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from groomguard.actions import ModAlert
from groomguard.adapters.discord.cardstore import Card, CardStore
from groomguard.adapters.matrix.store import MatrixStore, Mute
from groomguard.app.runtime import build_engine
from groomguard.engine import Engine
from groomguard.events import BaseEvent
from groomguard.testing import EventFactory, MemorySink, make_settings

from tests.legacy_rows import plant_matrix_invite

KID = "kidzq5"  # ids chosen so that no other id contains them
SUSPECT = "grownzq9"
OTHER = "otherzq3"


def _scenario(ev: EventFactory) -> list[BaseEvent]:
    """Two suspects reaching many minors, one of them the kid: requests, a DM, a view burst, replies."""
    events: list[BaseEvent] = [ev.adult(SUSPECT), ev.adult(OTHER), ev.minor(KID)]
    kids = [f"minor{i:02d}" for i in range(14)] + [KID]
    events += [ev.minor(k) for k in kids[:-1]]
    for k in kids:
        events.append(ev.contact(SUSPECT, k, request_id=f"{SUSPECT}>{k}"))
        events.append(ev.contact(OTHER, k, request_id=f"req-{OTHER}-{k}"))
        ev.tick(minutes=5)
    events.append(ev.answer(SUSPECT, KID, "rejected", request_id=f"{SUSPECT}>{KID}"))
    conversation = f"dm-{SUSPECT}-{KID}"
    events.append(
        ev.message(SUSPECT, f"hey {KID} how old r u", conversation=conversation, private=True, recipients=(KID,))
    )
    events.append(ev.message(KID, "13", conversation=conversation, private=True, recipients=(SUSPECT,)))
    events.append(
        ev.message(
            OTHER, "dont tell anyone, its our secret", conversation=f"dm-{OTHER}-{KID}", private=True, recipients=(KID,)
        )
    )
    events += [ev.view(SUSPECT, k) for k in kids for _ in range(3)]
    return events


def _raw(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


def _walk(root: Any, skip: tuple[type, ...]) -> Iterator[str]:
    """Every string reachable from `root` through containers, dataclasses and object attributes."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (skip, type)) or callable(item):
            continue
        seen.add(id(item))
        if isinstance(item, str):
            yield item
        elif isinstance(item, bytes):
            yield item.decode("utf-8", "replace")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset | deque):
            stack.extend(item)
        elif is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in fields(item))
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("groomguard."):
            stack.extend(vars(item).values())
            stack.extend(getattr(item, s) for s in getattr(type(item), "__slots__", ()) if hasattr(item, s))
        elif hasattr(type(item), "__slots__") and type(item).__module__.startswith("groomguard."):
            stack.extend(getattr(item, s) for s in type(item).__slots__ if hasattr(item, s))
        elif hasattr(item, "model_dump"):
            stack.append(item.model_dump())


def _in_memory(engine: Engine, needle: str) -> list[str]:
    from groomguard.config import Settings

    skip: tuple[type, ...] = (Settings, MemorySink, type(engine.store))
    return [s[:120] for s in _walk(engine, skip) if needle in s]


async def _adapter_rows(engine: Engine, alert: ModAlert) -> None:
    """What the Matrix and Discord adapters keep about the kid in their own tables of the same file."""
    matrix = MatrixStore(engine.adapter_tables())
    await matrix.open()
    await matrix.save_dm_room(KID, "!dmroom:localhost")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    await plant_matrix_invite(matrix, SUSPECT, KID, "$ev1", at)
    await matrix.save_mute(Mute("!room:localhost", KID, at + timedelta(hours=1), 0))
    await matrix.close()
    cards = CardStore(engine.adapter_tables())
    await cards.open()
    await cards.save(Card(alert.case_id, 1, 2, 3, 1, alert, undelivered=[KID]))
    await cards.close()


async def test_forget_leaves_the_id_in_no_byte_of_the_database_wal_or_memory(tmp_path: Path) -> None:
    db = tmp_path / "erase.db"
    ev = EventFactory()
    sink = MemorySink()
    engine = build_engine(make_settings(db), [sink])
    await engine.start()
    try:
        await engine.ingest(_scenario(ev))
        await engine.drain()
        other_alert = next(a for a in sink.of(ModAlert) if a.suspect == OTHER and KID in a.children)
        await _adapter_rows(engine, other_alert)
        assert KID.encode() in _raw(db)
        assert _in_memory(engine, KID), "the walk sees the engine's memory"
        con = sqlite3.connect(db)
        assert con.execute("SELECT COUNT(*) FROM conversations WHERE instr(conversation, ?)", (KID,)).fetchone()[0]
        con.close()
        removed = await engine.forget(KID)
        assert removed, "forget reports what it removed"
        assert KID.encode() not in _raw(db), "the id survives in the database file, its WAL or its shm"
        assert _in_memory(engine, KID) == [], "the id survives in the running engine's memory"
        assert await engine.forget(KID) == {}, "a second forget finds nothing left"
        # Other suspects keep their cases, with the kid erased from them.
        case = engine.cases.active[("test-community", OTHER)]
        assert case.reasons and KID not in str(case.reasons)
    finally:
        await engine.stop()
    assert KID.encode() not in _raw(db)


async def test_forget_an_adult_twice_is_consistent(tmp_path: Path) -> None:
    db = tmp_path / "adult.db"
    ev = EventFactory()
    engine = build_engine(make_settings(db), [MemorySink()])
    await engine.start()
    try:
        await engine.ingest(_scenario(ev))
        await engine.drain()
        first = await engine.forget(SUSPECT)
        assert first.get("cases") and first.get("events")
        assert await engine.forget(SUSPECT) == {}
        assert SUSPECT.encode() not in _raw(db)
        assert _in_memory(engine, SUSPECT) == []
    finally:
        await engine.stop()


async def test_database_files_are_private_and_secure_delete_is_on(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    engine = build_engine(make_settings(db), [MemorySink()])
    await engine.start()
    try:
        await engine.ingest([EventFactory().adult("someone")])
        async with engine.store.db.execute("PRAGMA secure_delete") as cur:  # type: ignore[attr-defined]
            assert (await cur.fetchone())[0] == 1
        for part in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert part.exists() and stat.S_IMODE(part.stat().st_mode) == 0o600, part
    finally:
        await engine.stop()


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    engine = build_engine(make_settings(db), [MemorySink()])
    await engine.start()
    await engine.stop()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
