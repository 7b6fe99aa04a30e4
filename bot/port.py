"""The engine port: the one small surface adapters talk to, instead of the engine's attributes.

An adapter hands events in (submit, ingest, decide), asks about cases, works the outbox it delivers from,
erases on request and audits what it saw. `groomguard.engine.Engine` implements it; adapters import this
module, never the engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from groomguard.actions import ActionT, ModAlert
from groomguard.cases import Case
from groomguard.events import BaseEvent, ModeratorDecision
from groomguard.pictures import CardPicture
from groomguard.storage import Database


@dataclass
class EngineStats:
    """Counters for the summary table and metrics."""

    received: int = 0
    duplicates: int = 0
    stored: int = 0
    processed: int = 0
    findings: int = 0
    alerts: int = 0
    alert_updates: int = 0
    notices: int = 0
    notices_suppressed: int = 0
    enforcements: int = 0
    detector_errors: int = 0
    delivery_errors: int = 0
    cases_opened: int = 0
    #: Events taken in but dropped unstored when the store failed (never acknowledged to their senders).
    dropped: int = 0
    #: Inputs refused before they became events (bad JSON lines, invalid webhook bodies), by source.
    rejected: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0


class EnginePort(Protocol):
    """What an adapter may ask of the engine."""

    stats: EngineStats

    @property
    def queue_depth(self) -> int: ...

    # -- input ----------------------------------------------------------------------------
    async def submit(self, event: BaseEvent) -> None: ...
    async def submit_many(self, events: Sequence[BaseEvent]) -> None: ...
    async def ingest(self, events: Sequence[BaseEvent]) -> int: ...
    async def decide(self, decision: ModeratorDecision) -> int: ...
    def reject(self, source: str, count: int = 1) -> None: ...
    def time_problem(self, event: BaseEvent) -> str | None: ...
    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]: ...
    async def drain(self) -> None: ...

    # -- cases ----------------------------------------------------------------------------
    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None: ...
    def case_card(self, case: Case, now: datetime) -> ModAlert: ...
    def case_risk(self, case: Case, now: datetime) -> float: ...
    async def community_clocks(self) -> dict[str, datetime]: ...
    async def case_queue(
        self,
        *,
        status: str | None = None,
        community: str | None = None,
        platform: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]: ...
    async def case_detail(self, case_id: int) -> tuple[dict[str, Any], ModAlert] | None: ...
    async def case_picture(self, case_id: int) -> CardPicture | None: ...
    def case_link(self, case_id: int) -> str | None: ...

    # -- the adapter's own tables, in the engine's database ----------------------------
    def adapter_tables(self) -> Database: ...

    # -- outbox, erasure, audit -----------------------------------------------------------
    async def pending_actions(self) -> list[ActionT]: ...
    async def mark_delivered(self, action_ids: Sequence[str]) -> None: ...
    async def redeliver(self) -> int: ...
    async def forget(self, account: str, community: str | None = None) -> dict[str, int]: ...
    async def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        detail: dict[str, Any],
        community: str | None = None,
        case_id: int | None = None,
    ) -> None: ...
