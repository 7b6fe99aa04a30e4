"""The store port: the protocol the engine writes through and what one batch commits; backends live in groomguard.store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from groomguard.actions import ActionT
from groomguard.cases import Audit, Case
from groomguard.events import BaseEvent
from groomguard.findings import Finding
from groomguard.memory import MemoryRow
from groomguard.records import Account
from groomguard.state import PendingWrites


class StaleLease(RuntimeError):
    """The store refused a batch: this engine no longer holds a partition the batch touched (another took it
    over). Nothing of the batch was written; the engine rebuilds its memory from the store and goes on."""


@dataclass
class BatchWrite:
    """Everything one processed batch changes, committed in one transaction with the watermark."""

    state: PendingWrites
    cases: list[Case]
    findings: list[tuple[int, Finding]]
    actions: list[ActionT]
    #: (community, child, suspect, at ISO, template key) of each child notice sent.
    notices: list[tuple[str, str, str, str, str]]
    audit: list[Audit]
    watermark: int
    watermark_at: datetime
    half_life_hours: float
    #: Detector memory rows of this batch (groomguard.memory); value None deletes the row.
    memory: list[MemoryRow] = field(default_factory=list)
    #: Latest event time per community in this batch: a case's risk is stored decayed to its own
    #: community's clock, never to another community's.
    clocks: dict[str, datetime] = field(default_factory=dict)
    #: The clock a case's row is decayed to when it is not its community's latest: several batches
    #: committed together (the engine's group commit) store each case as of the batch that changed it.
    case_clocks: dict[int, datetime] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What the engine needs in memory at start: accounts, open cases, notice history, the watermark."""

    accounts: list[tuple[str, Account]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    next_case_id: int = 1
    dismissals: dict[tuple[str, str], int] = field(default_factory=dict)
    notices: list[tuple[str, str, str, datetime, str]] = field(default_factory=list)
    watermark: int = 0
    watermark_at: datetime | None = None
    #: Where a store shared by several processing engines numbers new cases (community -> id); None: next_case_id on.
    case_ids: Callable[[str], int] | None = None


class Database(Protocol):
    """One connection to the store's database in its SQL dialect (groomguard.store.db), for an adapter's own tables.

    Statements use `$1, $2, ...` placeholders and ON CONFLICT upserts; `json_text` and `contains` give
    the SQL for what the dialects spell differently. Each statement commits on its own.
    """

    dialect: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def json_text(self, column: str, field: str) -> str: ...
    def contains(self, column: str, param: str) -> str: ...
    async def execute(self, statement: str, *args: Any) -> int: ...
    async def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None: ...
    async def fetch(self, statement: str, *args: Any) -> list[Mapping[str, Any]]: ...
    async def fetchrow(self, statement: str, *args: Any) -> Mapping[str, Any] | None: ...


class AdapterTables:
    """Base of an adapter's own tables: one `Database` connection (from `Store.tables()`), opened and closed with it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


class Store(Protocol):
    """The durable side of GroomGuard: an idempotent event log plus the state derived from it."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]: ...
    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]: ...
    async def snapshot(self, contact_window_hours: float) -> Snapshot: ...
    async def commit_batch(self, batch: BatchWrite) -> None: ...
    async def pending_actions(self) -> list[ActionT]: ...
    async def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None: ...
    async def accepted_contacts(self, community: str, account: str) -> set[str]: ...
    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None: ...
    async def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        detail: dict[str, Any],
        community: str | None = None,
        case_id: int | None = None,
    ) -> None: ...
    async def forget(self, account: str, community: str | None = None) -> dict[str, int]: ...
    async def purge_expired(self, now: datetime, message_days: int, event_days: int) -> dict[str, int]: ...
    async def counts(self) -> dict[str, int]: ...
    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None: ...
    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]: ...
    async def purge_memory(self, before: datetime) -> int: ...
    async def put_web_link(self, digest: str, moderator: str, expires_at: datetime) -> None: ...
    async def take_web_link(self, digest: str, now: datetime) -> str | None: ...
    def tables(self) -> Database:
        """A new, unopened connection to this store's database, for an adapter's own tables (migration 005)."""
        ...


@runtime_checkable
class PipelinedStore(Store, Protocol):
    """A store whose batch commits can run behind processing (SQLite: groomguard.store.sqlite).

    The engine pins reads (`pin_reads`) to one committed state, hands batches over (`submit_batch`)
    without waiting and keeps merging what it handed over into reads, then waits for all of them
    (`settle`) before it moves the pin (`release_reads`, `pin_reads`). See SqliteStore for why that is exact.
    """

    @property
    def pipelined(self) -> bool: ...
    def pin_reads(self) -> None: ...
    def release_reads(self, hold: bool = False) -> None: ...
    def start_checkpoint(self) -> asyncio.Future[None] | None: ...
    def submit_batch(self, batch: BatchWrite) -> asyncio.Future[None]: ...
    async def settle(self) -> None: ...
