"""The adapter's own tables: where each case's alert card lives, and which actions were carried out.

They are migration 005 of the engine's store (SQLite or PostgreSQL), written through a connection of
their own (`EnginePort.adapter_tables()`), so `forget` and a PostgreSQL deployment reach them too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from groomguard.actions import ModAlert
from groomguard.storage import AdapterTables

log = logging.getLogger(__name__)


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


class CardStore(AdapterTables):
    """Card locations and finished action ids, so edits, buttons and idempotency survive restarts."""

    async def card(self, case_id: int) -> Card | None:
        row = await self.db.fetchrow("SELECT * FROM discord_cards WHERE case_id = $1", case_id)
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
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (case_id) DO UPDATE SET guild_id=excluded.guild_id,"
            " channel_id=excluded.channel_id, message_id=excluded.message_id, version=excluded.version,"
            " alert=excluded.alert, undelivered=excluded.undelivered, updated_at=excluded.updated_at",
            card.case_id,
            str(card.guild_id),
            str(card.channel_id),
            str(card.message_id),
            card.version,
            card.alert.model_dump_json(),
            json.dumps(card.undelivered),
            datetime.now(UTC).isoformat(),
        )

    async def is_done(self, action_id: str) -> bool:
        return await self.db.fetchrow("SELECT 1 FROM discord_done WHERE action_id = $1", action_id) is not None

    async def mark_done(self, action_id: str) -> None:
        await self.db.execute(
            "INSERT INTO discord_done (action_id, done_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            action_id,
            datetime.now(UTC).isoformat(),
        )

    async def forget(self, account: str) -> int:
        """Drop cards about `account` (as suspect); the Discord messages themselves are deleted by the caller."""
        removed = await self.db.execute(
            f"DELETE FROM discord_cards WHERE {self.db.json_text('alert', 'suspect')} = $1", account
        )
        # Cards about other suspects may name this account as a child or in evidence: scrub the stored copy.
        token = json.dumps(account)
        rows = await self.db.fetch(
            "SELECT case_id, alert, undelivered FROM discord_cards WHERE "
            f"{self.db.contains('alert', '$1')} OR {self.db.contains('undelivered', '$1')}",
            token,
        )
        for case_id, alert_json, undelivered_json in (tuple(r) for r in rows):
            alert = json.loads(alert_json)
            alert["children"] = [c for c in alert.get("children", []) if c != account]
            alert["evidence"] = [e for e in alert.get("evidence", []) if e.get("ref") != account]
            undelivered = [c for c in json.loads(undelivered_json) if c != account]
            await self.db.execute(
                "UPDATE discord_cards SET alert = $1, undelivered = $2 WHERE case_id = $3",
                json.dumps(alert),
                json.dumps(undelivered),
                case_id,
            )
        return removed

    async def cards_for(self, account: str) -> list[Card]:
        rows = await self.db.fetch(
            f"SELECT case_id FROM discord_cards WHERE {self.db.json_text('alert', 'suspect')} = $1", account
        )
        return [c for row in rows if (c := await self.card(row["case_id"])) is not None]
