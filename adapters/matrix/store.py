"""The Matrix adapter's own durable state: sync token, alert cards, DMs, pending invites, mutes, prompts.

These tables live in the engine's SQLite file but belong to the adapter and are opened through the
adapter's own aiosqlite connection (WAL lets both connections share the file). Why not an engine
migration: the engine's store is the record of *events and cases*; this is the record of *where the
adapter put things on Matrix*, which nothing else reads, and keeping it here leaves the Store protocol
and the migration numbering (shared by every engineer) untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite
from groomguard.store.sqlite import private_file

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS matrix_sync (account TEXT PRIMARY KEY, next_batch TEXT NOT NULL, saved_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_cards (
    community TEXT NOT NULL, case_id INTEGER NOT NULL, room_id TEXT NOT NULL, event_id TEXT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (community, case_id));
CREATE INDEX IF NOT EXISTS matrix_cards_event ON matrix_cards(event_id);
CREATE TABLE IF NOT EXISTS matrix_delivered (action_id TEXT PRIMARY KEY, event_id TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_dms (account TEXT PRIMARY KEY, room_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_invites (
    request_id TEXT PRIMARY KEY, community TEXT NOT NULL, inviter TEXT NOT NULL, invitee TEXT NOT NULL,
    event_id TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS matrix_invites_at ON matrix_invites(at);
CREATE TABLE IF NOT EXISTS matrix_prompts (
    event_id TEXT PRIMARY KEY, community TEXT NOT NULL, case_id INTEGER NOT NULL, decision TEXT NOT NULL,
    asked_by TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_mutes (
    room_id TEXT NOT NULL, account TEXT NOT NULL, until TEXT NOT NULL, previous INTEGER,
    PRIMARY KEY (room_id, account));
"""


@dataclass(frozen=True)
class Card:
    """Where the alert card for one case was posted, and which version it shows."""

    room_id: str
    event_id: str
    version: int
    case_id: int
    community: str


@dataclass(frozen=True)
class PendingInvite:
    """An invite not yet answered; it becomes `expired` after the configured time."""

    request_id: str
    community: str
    inviter: str
    invitee: str
    event_id: str
    at: datetime


@dataclass(frozen=True)
class Prompt:
    """A "react ✅ to confirm" message the bot posted for a drastic decision (ban)."""

    event_id: str
    community: str
    case_id: int
    decision: str
    asked_by: str


@dataclass(frozen=True)
class Mute:
    room_id: str
    account: str
    until: datetime
    previous: int | None


class MatrixStore:
    """Small, adapter-owned tables; every write is its own short autocommit statement."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("matrix store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)  # 0600: the engine's database file, shared
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.execute("PRAGMA secure_delete=ON")  # erased rows leave no bytes behind (groomguard.store)
        await self._db.executescript(SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _one(self, sql: str, args: tuple[object, ...]) -> aiosqlite.Row | None:
        async with self.db.execute(sql, args) as cur:
            return await cur.fetchone()

    # -- sync token ------------------------------------------------------------------------

    async def sync_token(self, account: str) -> str | None:
        row = await self._one("SELECT next_batch FROM matrix_sync WHERE account = ?", (account,))
        return str(row[0]) if row else None

    async def save_sync_token(self, account: str, token: str, at: datetime) -> None:
        await self.db.execute("INSERT OR REPLACE INTO matrix_sync VALUES (?, ?, ?)", (account, token, at.isoformat()))

    # -- delivery idempotency --------------------------------------------------------------

    async def delivered(self, action_id: str) -> bool:
        return await self._one("SELECT 1 FROM matrix_delivered WHERE action_id = ?", (action_id,)) is not None

    async def mark_delivered(self, action_id: str, event_id: str | None, at: datetime) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO matrix_delivered VALUES (?, ?, ?)", (action_id, event_id, at.isoformat())
        )

    # -- alert cards -----------------------------------------------------------------------

    async def card(self, community: str, case_id: int) -> Card | None:
        row = await self._one(
            "SELECT room_id, event_id, version FROM matrix_cards WHERE community = ? AND case_id = ?",
            (community, case_id),
        )
        return Card(row[0], row[1], row[2], case_id, community) if row else None

    async def card_by_event(self, event_id: str) -> Card | None:
        row = await self._one(
            "SELECT room_id, event_id, version, case_id, community FROM matrix_cards WHERE event_id = ?", (event_id,)
        )
        return Card(row[0], row[1], row[2], row[3], row[4]) if row else None

    async def save_card(self, card: Card) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO matrix_cards VALUES (?, ?, ?, ?, ?)",
            (card.community, card.case_id, card.room_id, card.event_id, card.version),
        )

    # -- DMs with children -----------------------------------------------------------------

    async def dm_room(self, account: str) -> str | None:
        row = await self._one("SELECT room_id FROM matrix_dms WHERE account = ?", (account,))
        return str(row[0]) if row else None

    async def save_dm_room(self, account: str, room_id: str) -> None:
        await self.db.execute("INSERT OR REPLACE INTO matrix_dms VALUES (?, ?)", (account, room_id))

    # -- pending invites -------------------------------------------------------------------

    async def add_invites(self, invites: list[PendingInvite]) -> None:
        if invites:
            await self.db.executemany(
                "INSERT OR IGNORE INTO matrix_invites VALUES (?, ?, ?, ?, ?, ?)",
                [(i.request_id, i.community, i.inviter, i.invitee, i.event_id, i.at.isoformat()) for i in invites],
            )

    async def settle_invites(self, request_ids: list[str]) -> None:
        if request_ids:
            await self.db.executemany("DELETE FROM matrix_invites WHERE request_id = ?", [(r,) for r in request_ids])

    async def invites_before(self, cutoff: datetime, limit: int = 500) -> list[PendingInvite]:
        async with self.db.execute(
            "SELECT request_id, community, inviter, invitee, event_id, at FROM matrix_invites WHERE at < ? "
            "ORDER BY at LIMIT ?",
            (cutoff.isoformat(), limit),
        ) as cur:
            rows = await cur.fetchall()
        return [PendingInvite(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows]

    # -- confirmation prompts --------------------------------------------------------------

    async def save_prompt(self, prompt: Prompt, at: datetime) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO matrix_prompts VALUES (?, ?, ?, ?, ?, ?)",
            (prompt.event_id, prompt.community, prompt.case_id, prompt.decision, prompt.asked_by, at.isoformat()),
        )

    async def prompt(self, event_id: str) -> Prompt | None:
        row = await self._one(
            "SELECT event_id, community, case_id, decision, asked_by FROM matrix_prompts WHERE event_id = ?",
            (event_id,),
        )
        return Prompt(row[0], row[1], row[2], row[3], row[4]) if row else None

    # -- mutes -----------------------------------------------------------------------------

    async def save_mute(self, mute: Mute) -> None:
        # Keep the first `previous` level: muting twice must not make -1 the level to restore.
        await self.db.execute(
            "INSERT INTO matrix_mutes VALUES (?, ?, ?, ?) ON CONFLICT (room_id, account) DO UPDATE SET until = excluded.until",
            (mute.room_id, mute.account, mute.until.isoformat(), mute.previous),
        )

    async def mutes_due(self, now: datetime) -> list[Mute]:
        async with self.db.execute(
            "SELECT room_id, account, until, previous FROM matrix_mutes WHERE until <= ?", (now.isoformat(),)
        ) as cur:
            rows = await cur.fetchall()
        return [Mute(r[0], r[1], datetime.fromisoformat(r[2]), r[3]) for r in rows]

    async def drop_mute(self, room_id: str, account: str) -> None:
        await self.db.execute("DELETE FROM matrix_mutes WHERE room_id = ? AND account = ?", (room_id, account))

    # -- erasure ---------------------------------------------------------------------------

    async def forget(self, account: str) -> int:
        """Drop what the adapter keeps about one account (its DM room, pending invites, mutes)."""
        removed = 0
        for sql, n in (
            ("DELETE FROM matrix_dms WHERE account = ?", 1),
            ("DELETE FROM matrix_invites WHERE inviter = ? OR invitee = ?", 2),
            ("DELETE FROM matrix_mutes WHERE account = ?", 1),
        ):
            cur = await self.db.execute(sql, (account,) * n)
            removed += max(0, cur.rowcount)
        return removed
