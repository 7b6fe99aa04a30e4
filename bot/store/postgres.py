"""PostgreSQL store through asyncpg: the SqliteStore contract, shared safely by several engine processes.

How several engines share one database (one per Discord shard, or a webhook beside a bot):

* Every engine **stores**: inserts are idempotent (`ON CONFLICT (key) DO NOTHING`), `seq` comes from a
  PostgreSQL sequence, and appends take a transaction-scoped advisory lock so that commit order equals
  seq order (a reader never sees seq 7 before seq 6 is committed, so no event can slip under the watermark).
* Exactly one engine **processes**: the one that took the session-level advisory lock `PROCESSING_LOCK`
  when it opened. Detector state and cases live in that engine's memory, so one processor is what makes
  "one case per suspect, one alert per case" hold without distributed state. Its `append_events` returns
  every committed event past what it has processed, its own and the other engines', in seq order;
  `LogFollower` polls so events stored by the others are processed even when the leader is idle.
* The others are **followers**: their `append_events` stores and returns nothing to process, so their
  engines never touch cases or the outbox. The lease lives as long as the leader's connection: if the
  leader dies, PostgreSQL releases it, a follower's `LogFollower` notices and sets `takeover`, and the
  follower restarts (crash-only) so that its new engine opens as leader and rebuilds memory from the store.
  Nothing is lost meanwhile: followers keep storing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from groomguard.events import BaseEvent, parse_event
from groomguard.storage import ActionT, BatchWrite, Snapshot
from groomguard.store.base import MIGRATION_LOCK, SqlStore, serialized
from groomguard.store.db import PostgresDatabase, read_migrations

__all__ = ["APPEND_LOCK", "MIGRATION_LOCK", "PROCESSING_LOCK", "PostgresStore", "PostgresStoreError", "migrations"]

log = logging.getLogger(__name__)

#: Advisory lock keys (arbitrary constants, "GG" + purpose) shared by every engine on the database.
PROCESSING_LOCK = 0x4747_0001
APPEND_LOCK = 0x4747_0002
#: Most events one append hands the leader; a longer backlog is handed by the next call or LogFollower.
MAX_HANDED = 50_000
EVENT_COLUMNS = ("key", "type", "community", "at", "stored_at", "body")


def migrations() -> list[tuple[int, str]]:
    """Numbered SQL files in bot/store/migrations_pg, in order (same numbers as the SQLite ones)."""
    return read_migrations("migrations_pg")


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStoreError(RuntimeError):
    """The database cannot be used; the message names the server (never the password)."""


class PostgresStore(SqlStore):
    """The shared store: one asyncpg connection per engine, which also holds the processing lease."""

    migration_folder = "migrations_pg"
    database: PostgresDatabase

    #: What groomguard.follower.LogFollower retries after: the server went away or restarted.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
    )

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(PostgresDatabase(url))
        #: True when this engine holds the processing lease (decided at open, for the engine's lifetime).
        self.leader = False
        self._handed = 0  # highest seq handed to the engine for processing

    @property
    def db(self) -> asyncpg.Connection:
        """The engine's asyncpg connection (it holds the processing lease)."""
        if self.database._db is None:
            raise PostgresStoreError("store is not open")
        conn: asyncpg.Connection = self.database._db
        return conn

    @serialized
    async def open(self) -> None:
        try:
            await self.database.open()
            await self._migrate()
            self.leader = bool(await self.database.fetchval("SELECT pg_try_advisory_lock($1)", PROCESSING_LOCK))
            self._handed = int(await self._meta("watermark") or 0)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self._close()
            raise PostgresStoreError(f"cannot open database {redact(self.url)}: {error}") from error
        log.info("postgres store open (%s)", "processing lease held" if self.leader else "follower: storing only")

    async def check(self) -> tuple[int, int]:
        """(schema version, latest known) after proving the database accepts a write; for `groomguard doctor`."""
        db = await asyncpg.connect(self.url)
        try:
            exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            current = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")) if exists else 0
            async with db.transaction():
                await db.execute("CREATE TEMP TABLE groomguard_doctor (x INTEGER) ON COMMIT DROP")
                await db.execute("INSERT INTO groomguard_doctor VALUES (1)")
        finally:
            await db.close()
        return current, max((v for v, _ in migrations()), default=0)

    @serialized
    async def close(self) -> None:
        await self._close()

    async def _close(self) -> None:
        await self.database.close()  # the session-level lease goes with the connection
        self.leader = False

    # -- event log: a sequence numbers events, and only the lease holder processes them ----------

    @serialized
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before; the leader gets back everything now due for processing, in seq order."""
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        if unique:
            now = datetime.now(UTC).isoformat()
            rows = [
                (e.key, e.type, e.community, e.at.isoformat(), now, e.model_dump_json())  # type: ignore[attr-defined]
                for e in unique.values()
            ]
            async with self.database.transaction():
                # Commit order = seq order, so no event can commit below a seq the leader has passed.
                await self.database.xact_lock(APPEND_LOCK)
                await self.database.insert_rows("events", EVENT_COLUMNS, ("text",) * 6, rows, "(key) DO NOTHING")
        if not self.leader:
            return []
        return await self._due(MAX_HANDED)

    @serialized
    async def take_due(self, limit: int) -> list[tuple[int, BaseEvent]]:
        """Events stored past what the leader has processed (by any engine), in seq order."""
        return await self._due(limit) if self.leader else []

    @serialized
    async def lease_free(self) -> bool:
        """Whether no engine holds the processing lease (probed without keeping it)."""
        got = bool(await self.database.fetchval("SELECT pg_try_advisory_lock($1)", PROCESSING_LOCK))
        if got:
            await self.database.fetchval("SELECT pg_advisory_unlock($1)", PROCESSING_LOCK)
        return got

    async def _due(self, limit: int) -> list[tuple[int, BaseEvent]]:
        rows = await self.database.fetch(
            "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", self._handed, limit
        )
        out = [(int(r[0]), parse_event(r[1])) for r in rows]
        if out:
            self._handed = out[-1][0]
        return out

    @serialized
    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events past `seq`; a follower has nothing to process, so it gets nothing."""
        if not self.leader:
            return []
        self._handed = seq
        return await self._due(limit)

    async def all_events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events past `seq` whoever processes them (for tools and tests)."""
        return await SqlStore.events_after(self, seq, limit)

    # -- what only the lease holder does ------------------------------------------------------

    async def snapshot(self, contact_window_hours: float) -> Snapshot:
        snap = await super().snapshot(contact_window_hours)
        self._handed = snap.watermark
        return snap

    async def commit_batch(self, batch: BatchWrite) -> None:
        if not self.leader:
            raise PostgresStoreError("only the engine holding the processing lease may commit processed batches")
        await super().commit_batch(batch)

    async def pending_actions(self) -> list[ActionT]:
        """Undelivered actions; only the leader delivers, so a follower's sinks never double a card."""
        return await super().pending_actions() if self.leader else []

    def tables(self) -> PostgresDatabase:
        """A connection of its own to this database, for an adapter's tables (see groomguard.store.db)."""
        return PostgresDatabase(self.url)

    # Rows `forget` removes are removed logically: PostgreSQL keeps dead row versions until VACUUM reuses
    # the space, so the operator's storage encryption and VACUUM schedule decide when the bytes are gone.
