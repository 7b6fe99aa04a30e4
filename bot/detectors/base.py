"""The detector contract: a named unit with typed settings and one async `inspect` method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from bot.events import AgeBand, BaseEvent
from bot.findings import Finding


@dataclass(slots=True)
class Account:
    """What the engine knows of one account in one community (kept small on purpose)."""

    account: str
    band: AgeBand = AgeBand.UNKNOWN
    age: int | None = None
    band_source: str | None = None
    regions: frozenset[str] = frozenset()
    created_at: datetime | None = None
    joined_at: datetime | None = None
    first_seen: datetime | None = None

    @property
    def is_minor(self) -> bool:
        return self.band is AgeBand.MINOR

    @property
    def may_be_adult(self) -> bool:
        """Adults and unknown-age accounts are watched as possible suspects; minors are not."""
        return self.band is not AgeBand.MINOR


@dataclass(frozen=True, slots=True)
class ContactEdge:
    """A first contact from `source` to `target` (the start of a relationship)."""

    source: str
    target: str
    kind: str
    at: datetime
    event_key: str


@runtime_checkable
class DetectorState(Protocol):
    """The narrow, read-mostly view of community state a detector may use."""

    async def account(self, community: str, account: str) -> Account: ...

    async def contacts_started(self, community: str, source: str, since: datetime) -> Sequence[ContactEdge]: ...

    async def accepted_contacts(self, community: str, account: str) -> frozenset[str]: ...


class Detector(Protocol):
    """A named detector; `inspect` must not do platform I/O and must tolerate unknown accounts."""

    name: ClassVar[str]

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]: ...


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """One registry row: how to build a detector and what it is for."""

    name: str
    summary: str
    settings_model: type[BaseModel]
    factory: Callable[[Any], Detector]
