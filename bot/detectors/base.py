"""The detector contract: a named unit with typed settings and one async `inspect` method.

Detector memory (state a detector keeps between events) goes through `DetectorMemory`, which
`state.memory(self.name)` returns inside `inspect`; see that class for how it survives restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

from groomguard.events import BaseEvent
from groomguard.findings import Finding
from groomguard.records import Account, ContactEdge, RequestRecord, Turn, ViewerHour, ViewShare
from pydantic import BaseModel, ConfigDict, Field, model_validator


class DetectorMemory(Protocol):
    """What one detector remembers between events, persisted with the batch (implemented in groomguard.memory).

    How a detector uses it, inside `inspect` (never keep such state in your own dicts: it would be lost
    on restart and doubled after kill -9):

        memory = state.memory(self.name)
        window = await memory.get(event.community, conversation_key, at=event.at)  # None if absent/expired
        window = update(window or fresh())
        memory.put(event.community, conversation_key, window,
                   accounts=(adult, child), expires_at=event.at + timedelta(hours=24))
        memory.delete(event.community, old_key)  # when a window closes

    The contract:
    - Rows are `(detector, community, key) -> value`. `value` is anything `json.dumps` takes (dicts,
      lists, str, numbers, bools, None inside containers); encode bytes yourself (base64). `get`
      returns a freshly decoded copy: change it freely, but only `put` changes the memory.
    - Writes are queued and readable at once (a later event in the same batch sees them); the engine
      commits them in the batch's one transaction with findings, cases, outbox, notices and the
      watermark. A crash before that commit loses both the rows and the batch, which is then replayed
      from the event log and recomputes them; so after a restart a detector sees exactly the memory it
      had after the last committed batch: nothing lost, nothing doubled.
    - Reads are lazy: the first `get` of a key loads the committed row from the store (microseconds on
      SQLite) and caches it, so memory stays bounded and nothing needs restoring at start.
    - `accounts` names every account id the row is about (also ids inside `value`): `forget(account)`
      deletes every row that lists it, in the store and in memory. A key equal to the account id is
      erased too. List them all: an unlisted id would survive an erasure request.
    - `expires_at` (event time) hides the row from `get(..., at=t)` once `t >= expires_at` (without
      `at`, expiry is not checked). Retention deletes a row once it expired longer ago than
      `store.message_retention_days` by the wall clock (late or out-of-order events must still find
      it). Without `expires_at` a row lives until deleted or forgotten: delete what you no longer need.
    - Keys and values are per community; use any string key (an account id, a conversation id, a
      composite such as f"{adult}|{child}"). Values should stay small (they are re-encoded per `put`).
    - Outside the engine (a bare CommunityState in unit tests) the same API works in memory only.
    """

    async def get(self, community: str, key: str, at: datetime | None = None) -> Any | None: ...

    def put(
        self, community: str, key: str, value: Any, *, accounts: Iterable[str], expires_at: datetime | None = None
    ) -> None: ...

    def delete(self, community: str, key: str) -> None: ...


@runtime_checkable
class DetectorState(Protocol):
    """The narrow, read-mostly view of community state a detector may use."""

    async def account(self, community: str, account: str) -> Account: ...

    async def contacts_started(self, community: str, source: str, since: datetime) -> Sequence[ContactEdge]: ...

    async def accepted_contacts(self, community: str, account: str) -> frozenset[str]: ...

    async def accepted_degree(self, community: str, account: str) -> int: ...

    def community_size(self, community: str) -> int: ...

    async def message_author(self, community: str, message_id: str) -> str | None: ...

    async def recent_turns(self, community: str, conversation: str, since: datetime) -> Sequence[Turn]: ...

    async def turns_newest_first(self, community: str, conversation: str, since: datetime) -> Iterator[Turn]: ...

    async def first_contact(self, community: str, source: str, target: str) -> ContactEdge | None: ...

    async def requests_sent(self, community: str, source: str, since: datetime) -> Sequence[RequestRecord]: ...

    async def viewer_hour(self, community: str, viewer: str, at: datetime, alpha: float) -> ViewerHour: ...

    async def community_views(self, community: str, at: datetime, hours: int) -> ViewShare: ...

    def record_rank(self, community: str, metric: str, account: str, value: float, at: datetime) -> None: ...

    def rank_threshold(
        self, community: str, metric: str, at: datetime, window: timedelta, quantile: float, min_population: int
    ) -> float | None: ...

    def infer_minor(self, community: str, account: str, age: int, at: datetime) -> bool: ...

    def memory(self, detector: str) -> DetectorMemory:
        """This detector's persistent memory (see `DetectorMemory`)."""
        ...


class Detector(Protocol):
    """A named detector; `inspect` must not do platform I/O and must tolerate unknown accounts.

    Every member is required (`check_detector` says which one a class lacks): the engine feeds a
    detector only the event types in `handles`, runs it only while `enabled`, and calls `forget` on
    every erasure request.
    """

    name: ClassVar[str]

    #: The event types it reads; the engine feeds it nothing else (`(BaseEvent,)`: every event).
    handles: ClassVar[tuple[type[BaseEvent], ...]]

    @property
    def enabled(self) -> bool:
        """False when its settings turn it off; the engine then never feeds it."""
        ...

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]: ...

    def forget(self, account: str, community: str | None = None) -> None:
        """Erase what it holds about `account` in this process; its `DetectorMemory` rows the engine erases."""
        ...


#: The members `check_detector` looks for: the `Detector` protocol's.
DETECTOR_MEMBERS = ("name", "handles", "enabled", "inspect", "forget")


def check_detector(detector: object) -> Detector:
    """`detector` itself, or a TypeError naming the `Detector` members its class lacks (caught at start-up,
    not at the first erasure request)."""
    missing = [member for member in DETECTOR_MEMBERS if not hasattr(detector, member)]
    if missing:
        raise TypeError(
            f"{type(detector).__name__} is not a detector: it lacks {', '.join(missing)} "
            "(see groomguard.detectors.base.Detector)"
        )
    return detector  # type: ignore[return-value]


class DetectorSettings(BaseModel):
    """What every detector's settings have: unknown keys are refused, and the detector can be turned off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="turn the detector on or off")


SettingsT = TypeVar("SettingsT", bound=DetectorSettings)


class StoreBackedDetector(Generic[SettingsT]):
    """A detector built from its settings that remembers nothing outside the store: `enabled` follows the
    settings, and `forget` has nothing of its own to erase (its `DetectorMemory` rows and the store's
    tables are erased by the engine's forget). A detector holding state in the process overrides `forget`.
    """

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def forget(self, account: str, community: str | None = None) -> None:
        """Nothing to erase here: what it remembers is in the store, which the engine's forget erases."""


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """One registry row: how to build a detector and what it is for."""

    name: str
    summary: str
    settings_model: type[DetectorSettings]
    factory: Callable[[Any], Detector]


def ramp(count: float, at_floor: float, at_top: float, floor: float, top: float) -> float:
    """A score rising linearly from `floor` (at `at_floor`) to `top` (at `at_top` and beyond)."""
    progress = min(1.0, max(0.0, (count - at_floor) / (at_top - at_floor)))
    return floor + (top - floor) * progress


class RampSettings(DetectorSettings):
    """Settings of a detector whose score rises (`ramp`) from `floor_score` at a floor count to a top score at a
    saturating count: the checks that they are in order, and the score, are this class's.

    The keys stay each detector's own, as its TOML documents them: a subclass declares the two counts
    (`min_minors`/`saturate_minors`, `min_refused`/`saturate_refused`...), `floor_score` and, where it has
    one, `top_score`, with its own defaults and descriptions, and names the counts in `ramp_counts`. This
    class adds no key, so neither the keys nor their order change.
    """

    #: The fields holding the count where the score starts (at `floor_score`) and the count where it tops out.
    ramp_counts: ClassVar[tuple[str, str]]
    #: The field holding the score at the saturating count; None: the score tops out at 1.0.
    ramp_top: ClassVar[str | None] = "top_score"
    if TYPE_CHECKING:
        # Declared by every subclass, with its own default and description (checked at import).
        floor_score: float

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, at import, a subclass whose ramp names fields it does not have."""
        super().__pydantic_init_subclass__(**kwargs)
        names = [*cls.ramp_counts, "floor_score", *([cls.ramp_top] if cls.ramp_top else [])]
        missing = [name for name in names if name not in cls.model_fields]
        if missing:
            raise TypeError(f"{cls.__name__} names ramp fields it does not declare: {', '.join(missing)}")

    @model_validator(mode="after")
    def _ramp_in_order(self) -> Self:
        low, high = self.ramp_counts
        if getattr(self, high) <= getattr(self, low):
            raise ValueError(f"{high} must be greater than {low}")
        if self.ramp_top is not None and self.top < self.floor_score:
            raise ValueError(f"{self.ramp_top} must be at least floor_score")
        return self

    @property
    def top(self) -> float:
        """The score at the saturating count and beyond."""
        return float(getattr(self, self.ramp_top)) if self.ramp_top is not None else 1.0

    def progress(self, count: float) -> float:
        """How far `count` is along the ramp: 0.0 at the floor count (and below), 1.0 at the saturating count."""
        low, high = self.ramp_counts
        return ramp(count, getattr(self, low), getattr(self, high), 0.0, 1.0)

    def score(self, count: float) -> float:
        """The score at `count`: the floor score at the floor count, the top at the saturating count and beyond."""
        low, high = self.ramp_counts
        return ramp(count, getattr(self, low), getattr(self, high), self.floor_score, self.top)
