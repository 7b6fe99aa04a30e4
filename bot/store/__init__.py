"""Durable storage behind one protocol, so PostgreSQL can follow SQLite without touching detectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.cases import Audit, Case
from groomguard.config import StoreSettings
from groomguard.detectors.base import Account
from groomguard.events import BaseEvent
from groomguard.findings import Finding
from groomguard.memory import MemoryRow
from groomguard.state import PendingWrites

ActionT = ModAlert | ChildNotice | Enforcement


@dataclass
class BatchWrite:
    """Everything one processed batch changes, committed in one transaction with the watermark."""

    state: PendingWrites
    cases: list[Case]
    findings: list[tuple[int, Finding]]
    actions: list[ActionT]
    notices: list[tuple[str, str, str, str]]
    audit: list[Audit]
    watermark: int
    watermark_at: datetime
    half_life_hours: float
    #: Detector memory rows of this batch (groomguard.memory); value None deletes the row.
    memory: list[MemoryRow] = field(default_factory=list)
    #: Latest event time per community in this batch: a case's risk is stored decayed to its own
    #: community's clock, never to another community's.
    clocks: dict[str, datetime] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What the engine needs in memory at start: accounts, open cases, notice history, the watermark."""

    accounts: list[tuple[str, Account]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    next_case_id: int = 1
    dismissals: dict[tuple[str, str], int] = field(default_factory=dict)
    notices: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    watermark: int = 0
    watermark_at: datetime | None = None


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
    async def put_web_link(self, digest: str, moderator: str, expires_at: datetime) -> None: ...
    async def take_web_link(self, digest: str, now: datetime) -> str | None: ...
    async def purge_expired(self, now: datetime, message_days: int, event_days: int) -> dict[str, int]: ...
    async def counts(self) -> dict[str, int]: ...
    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None: ...
    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]: ...
    async def purge_memory(self, before: datetime) -> int: ...


def open_store(settings: StoreSettings) -> Store:
    """The store the settings ask for (SQLite unless a database_url is set)."""
    if settings.database_url:
        try:
            from groomguard.store.postgres import PostgresStore
        except ImportError as error:
            raise RuntimeError(
                f"store.database_url is set but PostgreSQL support is missing ({error}): pip install 'groomguard[postgres]'"
            ) from None
        return PostgresStore(settings.database_url)
    from groomguard.store.sqlite import SqliteStore

    return SqliteStore(settings.path)
