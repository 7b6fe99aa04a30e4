"""The Matrix adapter's own durable state: sync token, alert cards, DMs, mutes, confirmation prompts.

These tables are migration 005 of the engine's store (SQLite or PostgreSQL) but belong to the adapter:
it writes them through a connection of its own (`EnginePort.adapter_tables()`), one autocommit statement
at a time. They record *where the adapter put things on Matrix*, which nothing else reads; being in the
store's database, `forget` and a PostgreSQL deployment reach them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from groomguard.storage import AdapterTables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Card:
    """Where the alert card for one case was posted, and which version it shows."""

    room_id: str
    event_id: str
    version: int
    case_id: int
    community: str


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


class MatrixStore(AdapterTables):
    """Small, adapter-owned tables; every write is its own short autocommit statement."""

    # -- sync token ------------------------------------------------------------------------

    async def sync_token(self, account: str) -> str | None:
        row = await self.db.fetchrow("SELECT next_batch FROM matrix_sync WHERE account = $1", account)
        return str(row["next_batch"]) if row else None

    async def save_sync_token(self, account: str, token: str, at: datetime) -> None:
        await self.db.execute(
            "INSERT INTO matrix_sync VALUES ($1, $2, $3) ON CONFLICT (account) DO UPDATE "
            "SET next_batch = excluded.next_batch, saved_at = excluded.saved_at",
            account,
            token,
            at.isoformat(),
        )

    # -- delivery idempotency --------------------------------------------------------------

    async def delivered(self, action_id: str) -> bool:
        return await self.db.fetchrow("SELECT 1 FROM matrix_delivered WHERE action_id = $1", action_id) is not None

    async def mark_delivered(self, action_id: str, event_id: str | None, at: datetime) -> None:
        await self.db.execute(
            "INSERT INTO matrix_delivered VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            action_id,
            event_id,
            at.isoformat(),
        )

    # -- alert cards -----------------------------------------------------------------------

    async def card(self, community: str, case_id: int) -> Card | None:
        row = await self.db.fetchrow(
            "SELECT room_id, event_id, version FROM matrix_cards WHERE community = $1 AND case_id = $2",
            community,
            case_id,
        )
        return Card(row["room_id"], row["event_id"], row["version"], case_id, community) if row else None

    async def card_by_event(self, event_id: str) -> Card | None:
        row = await self.db.fetchrow(
            "SELECT room_id, event_id, version, case_id, community FROM matrix_cards WHERE event_id = $1", event_id
        )
        return Card(*tuple(row)) if row else None

    async def save_card(self, card: Card) -> None:
        await self.db.execute(
            "INSERT INTO matrix_cards VALUES ($1, $2, $3, $4, $5) ON CONFLICT (community, case_id) DO UPDATE "
            "SET room_id = excluded.room_id, event_id = excluded.event_id, version = excluded.version",
            card.community,
            card.case_id,
            card.room_id,
            card.event_id,
            card.version,
        )

    # -- DMs with children -----------------------------------------------------------------

    async def dm_room(self, account: str) -> str | None:
        row = await self.db.fetchrow("SELECT room_id FROM matrix_dms WHERE account = $1", account)
        return str(row["room_id"]) if row else None

    async def save_dm_room(self, account: str, room_id: str) -> None:
        await self.db.execute(
            "INSERT INTO matrix_dms VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET room_id = excluded.room_id",
            account,
            room_id,
        )

    # -- confirmation prompts --------------------------------------------------------------

    async def save_prompt(self, prompt: Prompt, at: datetime) -> None:
        await self.db.execute(
            "INSERT INTO matrix_prompts VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            prompt.event_id,
            prompt.community,
            prompt.case_id,
            prompt.decision,
            prompt.asked_by,
            at.isoformat(),
        )

    async def prompt(self, event_id: str) -> Prompt | None:
        row = await self.db.fetchrow(
            "SELECT event_id, community, case_id, decision, asked_by FROM matrix_prompts WHERE event_id = $1",
            event_id,
        )
        return Prompt(*tuple(row)) if row else None

    # -- mutes -----------------------------------------------------------------------------

    async def save_mute(self, mute: Mute) -> None:
        # Keep the first `previous` level: muting twice must not make -1 the level to restore.
        await self.db.execute(
            "INSERT INTO matrix_mutes VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, account) DO UPDATE SET until = excluded.until",
            mute.room_id,
            mute.account,
            mute.until.isoformat(),
            mute.previous,
        )

    async def mutes_due(self, now: datetime) -> list[Mute]:
        rows = await self.db.fetch(
            "SELECT room_id, account, until, previous FROM matrix_mutes WHERE until <= $1", now.isoformat()
        )
        return [Mute(r[0], r[1], datetime.fromisoformat(r[2]), r[3]) for r in map(tuple, rows)]

    async def drop_mute(self, room_id: str, account: str) -> None:
        await self.db.execute("DELETE FROM matrix_mutes WHERE room_id = $1 AND account = $2", room_id, account)

    # -- erasure ---------------------------------------------------------------------------

    async def forget(self, account: str) -> int:
        """Drop what the adapter keeps about one account (its DM room, mutes, and pending invites that
        earlier versions tracked: the rejections detector owns expiry now, and matrix_invites is only
        read here until a migration drops it)."""
        removed = 0
        for sql in (
            "DELETE FROM matrix_dms WHERE account = $1",
            "DELETE FROM matrix_invites WHERE inviter = $1 OR invitee = $1",
            "DELETE FROM matrix_mutes WHERE account = $1",
        ):
            removed += await self.db.execute(sql, account)
        return removed
