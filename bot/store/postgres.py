"""PostgreSQL store through asyncpg: the SqliteStore contract, shared safely by several engine processes.

How several engines share one database (one per Discord shard, or a webhook beside a bot):

* Every engine **stores**: inserts are idempotent (`ON CONFLICT (key) DO NOTHING`), `seq` comes from a
  PostgreSQL sequence, and appends take a transaction-scoped advisory lock so that commit order equals
  seq order (a reader never sees seq 7 before seq 6 is committed, so no event can slip under a watermark).
* Every engine **processes a share**: communities hash to partitions and each engine leases a fair share
  of them (groomguard.store.partitions). A community's detector state and cases live in the memory of the
  one engine holding its partition, so "one case per suspect, one alert per case" holds without
  distributed state. `append_events` returns every committed event of the held partitions past what was
  processed, the engine's own and the other engines', in seq order; `LogFollower` polls so events stored
  by the others are processed even when this engine is idle, and runs the lease rounds: a dead engine's
  partitions are taken over by the others in-process once its leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from groomguard.events import BaseEvent, dump_event
from groomguard.storage import Snapshot
from groomguard.store.base import MIGRATION_LOCK, SqlStore, serialized
from groomguard.store.db import PostgresDatabase, read_migrations
from groomguard.store.partitions import DEFAULT_PARTITIONS, Partitions, partition_of

__all__ = ["APPEND_LOCK", "MIGRATION_LOCK", "PostgresStore", "PostgresStoreError", "migrations"]

log = logging.getLogger(__name__)

#: Advisory lock keys (arbitrary constants, "GG" + purpose) shared by every engine on the database.
APPEND_LOCK = 0x4747_0002
#: Most events one append hands the engine; a longer backlog is handed by LogFollower's next polls. Kept
#: small enough that one batch never holds the event loop near a lease's length.
MAX_HANDED = 5_000
EVENT_COLUMNS = ("key", "type", "community", "at", "stored_at", "body", "part")
EVENT_TYPES = ("text",) * 6 + ("int",)


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
    """The shared store: one asyncpg connection per engine, and one more for its partition leases."""

    migration_folder = "migrations_pg"
    meta_watermark = False  # each partition's watermark moves in `fence`
    database: PostgresDatabase

    #: What groomguard.follower.LogFollower retries after: the server went away or restarted.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
    )

    def __init__(
        self, url: str, partitions: int = DEFAULT_PARTITIONS, lease_s: float = 8.0, *, process: bool = True
    ) -> None:
        self.url = url
        # A transaction left idle (a process frozen between its fence and its commit: SIGSTOP, a paused VM)
        # holds its partitions' rows locked, and a taker skips locked rows: the server ends such a
        # transaction once its lease would have run out, so the partitions are taken over in time.
        idle_ms = str(max(1000, int(lease_s * 1000)))
        super().__init__(PostgresDatabase(url, {"idle_in_transaction_session_timeout": idle_ms}))
        #: The partitions this engine leases and what it handed out of them; `process=False` stores only.
        self.partitions = Partitions(url, partitions, lease_s, process=process)
        #: Delivery records go over a connection of their own (`mark_delivered`), opened on first use.
        self._marks_db: asyncpg.Connection | None = None
        self._marks_lock = asyncio.Lock()

    @property
    def leader(self) -> bool:
        """Whether this engine holds at least one partition (processes anything)."""
        return bool(self.partitions.held)

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
            await self.partitions.setup(self.db)
            await self.partitions.start()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self._close()
            raise PostgresStoreError(f"cannot open database {redact(self.url)}: {error}") from error
        except BaseException:
            await self._close()
            raise
        log.info(
            "postgres store open: partitions %s of %d leased to %s",
            sorted(self.partitions.held),
            self.partitions.count,
            self.partitions.owner,
        )

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
        await self.partitions.close()
        marks, self._marks_db = self._marks_db, None
        if marks is not None:
            with contextlib.suppress(Exception):
                await marks.close()
        await self.database.close()

    # -- outbox: deliveries are recorded the moment they are made --------------------------------

    async def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        """Record deliveries on a connection of their own, autocommit: never behind a batch commit or the
        detector reads that queue on the engine's connection, so a process killed right after handing an
        action over has almost always recorded it (the taker of its partitions would hand it over again)."""
        async with self._marks_lock:
            if self._marks_db is None or self._marks_db.is_closed():
                self._marks_db = await asyncpg.connect(self.url)
            try:
                await self._marks_db.execute(
                    "UPDATE actions SET delivered_at = $1 WHERE id = ANY($2::text[]) AND delivered_at IS NULL",
                    at.isoformat(),
                    list(action_ids),
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn, self._marks_db = self._marks_db, None
                conn.terminate()  # a fresh connection next time
                raise

    def processes(self, community: str) -> bool:
        return self.partitions.owns(community)

    @serialized
    async def reconnect(self) -> None:
        """Open the engine's connection again if the server dropped it (LogFollower, after a database error)."""
        if await self.database.reopen():
            log.warning("postgres store: the connection to %s was lost and is open again", redact(self.url))

    # -- event log: a sequence numbers events; each engine processes the partitions it leases ---------

    @serialized
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before; get back what is now due in the held partitions, in seq order."""
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        if unique:
            now, count = datetime.now(UTC).isoformat(), self.partitions.count
            rows = [
                (
                    e.key,
                    e.type,
                    e.community,
                    e.at_iso,
                    now,
                    dump_event(e),
                    partition_of(e.community, count),
                )  # type: ignore[attr-defined]
                for e in unique.values()
            ]
            async with self.database.transaction():
                # Commit order = seq order, so no event can commit below a seq the leader has passed.
                await self.database.xact_lock(APPEND_LOCK)
                await self.database.insert_rows("events", EVENT_COLUMNS, EVENT_TYPES, rows, "(key) DO NOTHING")
        return await self.partitions.due(self.db, MAX_HANDED)

    @serialized
    async def take_due(self, limit: int) -> list[tuple[int, BaseEvent]]:
        """Events of the held partitions stored past what was handed (by any engine), in seq order."""
        return await self.partitions.due(self.db, limit)

    @serialized
    async def rebalance(self) -> bool:
        """One lease round (release beyond the fair share, take free partitions); True when the held set changed.

        Only between batches: the engine runs it under its writer lock (`Engine.rebalance`).
        """
        return await self.partitions.rebalance()

    @property
    def rebalance_every_s(self) -> float:
        """How often LogFollower should run a lease round."""
        return self.partitions.heartbeat_s

    @serialized
    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events of the held partitions past each one's watermark (`seq` is the engine's, one number
        for all: each partition keeps its own here, reset at every snapshot)."""
        return await self.partitions.due(self.db, limit)

    async def all_events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events past `seq` whoever processes them (for tools and tests)."""
        return await SqlStore.events_after(self, seq, limit)

    # -- partitions: what this engine processes, and the fence on its commits --------------------

    def _keep(self, rows: Any, community: Any) -> list[Any]:
        return self.partitions.keep(rows, community)

    async def _marks(self, snap: Snapshot) -> None:
        marks = await self.partitions.watermarks(self.db)
        snap.watermark = max((m for m, _ in marks.values()), default=0)
        snap.watermark_at = max((datetime.fromisoformat(at) for _, at in marks.values() if at), default=None)
        snap.case_ids = await self.partitions.case_ids(self.db)

    async def _fence(self) -> None:
        """Refuse the batch (`StaleLease`) unless every partition of it is still leased here; move their marks."""
        await self.partitions.fence(self.db)

    async def _processed(self, first: int) -> tuple[str, list[Any]]:
        # Never an event its partition has not processed yet (a NULL part matches no partition: kept).
        return "seq <= (SELECT p.watermark FROM partitions p WHERE p.part = events.part)", []

    def tables(self) -> PostgresDatabase:
        """A connection of its own to this database, for an adapter's tables (see groomguard.store.db)."""
        return PostgresDatabase(self.url)

    # Rows `forget` removes are removed logically: PostgreSQL keeps dead row versions until VACUUM reuses
    # the space, so the operator's storage encryption and VACUUM schedule decide when the bytes are gone.
