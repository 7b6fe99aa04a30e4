"""SQLite store through aiosqlite: WAL, numbered migrations, one writer, batched transactions.

The SQL is groomguard.store.base's, shared with PostgreSQL; what is SQLite's own lives here: the pragmas
(groomguard.store.db), sequence numbers handed out by the one writer, a read-only connection that answers
detector reads on the event loop, and the WAL checkpoint that takes erased rows out of the -wal file.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from groomguard.events import BaseEvent
from groomguard.store.base import SqlStore, serialized
from groomguard.store.db import SqliteDatabase, read_migrations, split_sql, sqlite_sql

__all__ = ["SqliteStore", "StoreError", "migrations", "split_sql"]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("seq", "key", "type", "community", "at", "stored_at", "body")


def migrations() -> list[tuple[int, str]]:
    """Numbered SQL files shipped in bot/store/migrations, in order."""
    return read_migrations("migrations")


class StoreError(RuntimeError):
    """The database cannot be used (locked, corrupt, unwritable); the message says which file."""


class SqliteStore(SqlStore):
    """The embedded default store; a single connection is the single writer."""

    migration_folder = "migrations"
    database: SqliteDatabase

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path))
        self._ro: sqlite3.Connection | None = None
        self._next_seq = 1

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer's aiosqlite connection (tests and tools read through it)."""
        if self.database._db is None:
            raise StoreError("store is not open")
        return self.database._db

    async def open(self) -> None:
        try:
            await self.database.open()
            await self._migrate()
            # Sequence numbers never go backwards, even after old events are purged.
            value = await self.database.fetchval(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), "
                "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'watermark'), 0))"
            )
            self._next_seq = int(value or 0) + 1
            # Detector reads are point look-ups on a local indexed file: a second, read-only connection
            # on the event loop answers them in microseconds, where a hop to aiosqlite's thread costs
            # ~100x that. WAL lets it read committed data while the writer thread works; the state
            # merges the current batch's uncommitted rows itself.
            self._ro = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        except (aiosqlite.Error, sqlite3.Error, OSError) as error:
            # Close the half-open connection: its worker thread would otherwise keep the process alive.
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {error}") from error

    async def close(self) -> None:
        if self._ro is not None:
            self._ro.close()
            self._ro = None
        await self.database.close()

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """Run one detector read on the read-only connection (see `open`); `$n` placeholders."""
        if self._ro is None:
            raise StoreError("store is not open")
        return self._ro.execute(sqlite_sql(sql), args).fetchall()

    async def _query(self, statement: str, *args: Any) -> list[Any]:
        return self._read(statement, args)

    # -- event log ------------------------------------------------------------------------

    @serialized
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before (by platform + event_id) and return them with their seq."""
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        keys = list(unique)
        known: set[str] = set()
        step = self.database.max_params
        for start in range(0, len(keys), step):
            condition, args = self.database.in_list("key", 1, keys[start : start + step])
            # Every earlier append is committed, so the read-only connection sees all known keys.
            known.update(row[0] for row in self._read(f"SELECT key FROM events WHERE {condition}", args))
        fresh = [(k, e) for k, e in unique.items() if k not in known]
        if not fresh:
            return []
        # The one writer numbers events itself: no other process appends to this file.
        now = datetime.now(UTC).isoformat()
        numbered = [(self._next_seq + i, e) for i, (_, e) in enumerate(fresh)]
        rows = [
            (seq, k, e.type, e.community, e.at.isoformat(), now, e.model_dump_json())  # type: ignore[attr-defined]
            for (seq, e), (k, _) in zip(numbered, fresh, strict=True)
        ]
        async with self.database.transaction():
            await self.database.insert_rows("events", EVENT_COLUMNS, (), rows)
        self._next_seq += len(numbered)
        return numbered

    # -- privacy --------------------------------------------------------------------------

    async def _erased(self) -> None:
        """Fold the WAL into the database and truncate it, so erased rows leave no copy in the -wal file."""
        async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            row = await cur.fetchone()
        if row is not None and row[0]:
            log.warning(
                "WAL checkpoint after erasure was blocked by a reader; the -wal file is cleared on the next one"
            )

    def tables(self) -> SqliteDatabase:
        """A connection of its own to this database file, for an adapter's tables (see groomguard.store.db)."""
        return SqliteDatabase(self.path)
