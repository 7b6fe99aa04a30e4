"""The adapter's own SQLite tables: where each case's alert card lives, and which actions were carried out."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from groomguard.actions import ModAlert
from groomguard.store.sqlite import private_file

log = logging.getLogger(__name__)

# Adapter-owned tables in the engine's database file, through a connection of our own: the Store
# protocol stays platform-free (and PostgreSQL-ready), and no core migration number is taken while
# other migrations are still being numbered. `IF NOT EXISTS` is this tiny schema's whole migration.
SCHEMA = """
CREATE TABLE IF NOT EXISTS discord_cards (
    case_id INTEGER PRIMARY KEY,
    guild_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    alert TEXT NOT NULL,
    undelivered TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS discord_done (
    action_id TEXT PRIMARY KEY,
    done_at TEXT NOT NULL
)
"""


@dataclass
class Card:
    """A posted alert card: where it is, which alert version it shows, and children we could not DM."""

    case_id: int
    guild_id: int
    channel_id: int
    message_id: int
    version: int
    alert: ModAlert
    undelivered: list[str] = field(default_factory=list)


class CardStore:
    """Card locations and finished action ids, so edits, buttons and idempotency survive restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("discord card store is not open")
        return self._db

    async def open(self) -> None:
        private_file(self.path)  # 0600: the engine's database file, shared
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.execute("PRAGMA secure_delete=ON")  # erased rows leave no bytes behind (groomguard.store)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                await self._db.execute(statement)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def card(self, case_id: int) -> Card | None:
        async with self.db.execute("SELECT * FROM discord_cards WHERE case_id = ?", (case_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return Card(
            case_id=row["case_id"],
            guild_id=int(row["guild_id"]),
            channel_id=int(row["channel_id"]),
            message_id=int(row["message_id"]),
            version=row["version"],
            alert=ModAlert.model_validate_json(row["alert"]),
            undelivered=json.loads(row["undelivered"]),
        )

    async def save(self, card: Card) -> None:
        await self.db.execute(
            "INSERT INTO discord_cards (case_id, guild_id, channel_id, message_id, version, alert, undelivered, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(case_id) DO UPDATE SET guild_id=excluded.guild_id,"
            " channel_id=excluded.channel_id, message_id=excluded.message_id, version=excluded.version,"
            " alert=excluded.alert, undelivered=excluded.undelivered, updated_at=excluded.updated_at",
            (
                card.case_id,
                str(card.guild_id),
                str(card.channel_id),
                str(card.message_id),
                card.version,
                card.alert.model_dump_json(),
                json.dumps(card.undelivered),
                datetime.now(UTC).isoformat(),
            ),
        )

    async def is_done(self, action_id: str) -> bool:
        async with self.db.execute("SELECT 1 FROM discord_done WHERE action_id = ?", (action_id,)) as cur:
            return await cur.fetchone() is not None

    async def mark_done(self, action_id: str) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO discord_done (action_id, done_at) VALUES (?, ?)",
            (action_id, datetime.now(UTC).isoformat()),
        )

    async def forget(self, account: str) -> int:
        """Drop cards about `account` (as suspect); the Discord messages themselves are deleted by the caller."""
        cur = await self.db.execute("DELETE FROM discord_cards WHERE json_extract(alert, '$.suspect') = ?", (account,))
        removed = max(0, cur.rowcount)
        # Cards about other suspects may name this account as a child or in evidence: scrub the stored copy.
        token = json.dumps(account)
        async with self.db.execute(
            "SELECT case_id, alert, undelivered FROM discord_cards WHERE instr(alert, ?) > 0 OR instr(undelivered, ?) > 0",
            (token, token),
        ) as cur2:
            rows = await cur2.fetchall()
        for case_id, alert_json, undelivered_json in rows:
            alert = json.loads(alert_json)
            alert["children"] = [c for c in alert.get("children", []) if c != account]
            alert["evidence"] = [e for e in alert.get("evidence", []) if e.get("ref") != account]
            undelivered = [c for c in json.loads(undelivered_json) if c != account]
            await self.db.execute(
                "UPDATE discord_cards SET alert = ?, undelivered = ? WHERE case_id = ?",
                (json.dumps(alert), json.dumps(undelivered), case_id),
            )
        return removed

    async def cards_for(self, account: str) -> list[Card]:
        async with self.db.execute(
            "SELECT case_id FROM discord_cards WHERE json_extract(alert, '$.suspect') = ?", (account,)
        ) as cur:
            ids = [row[0] for row in await cur.fetchall()]
        return [c for i in ids if (c := await self.card(i)) is not None]
