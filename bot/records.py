"""Record types the engine, the detectors and the store share: what is known of accounts, contacts, requests and views.

They live in the core, not in a detector module, so the store can read and write them without importing any detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from groomguard.events import AgeBand


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
    #: Standings with no personal tie behind them (moderator, bot, creator); see `StandingDeclared`.
    standings: frozenset[str] = frozenset()

    @property
    def is_minor(self) -> bool:
        return self.band is AgeBand.MINOR

    @property
    def may_be_adult(self) -> bool:
        """Adults and unknown-age accounts are watched as possible suspects; minors are not.

        A minor band the account gave itself (text such as "im 13", or telling the bot its age) keeps
        it watched too: adults who pose as children must not escape the detectors by saying so. Only a
        role or a moderator exempts an account.
        """
        return self.band is not AgeBand.MINOR or self.band_source in ("text", "self")


@dataclass(frozen=True, slots=True)
class Turn:
    """One message in a group conversation: who wrote it, when, and its id (for addressing)."""

    author: str
    at: datetime
    message_id: str


@dataclass(frozen=True, slots=True)
class ContactEdge:
    """A first contact from `source` to `target` (the start of a relationship)."""

    source: str
    target: str
    kind: str
    at: datetime
    event_key: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answerable request (friend, follow, dm, invite) from `source` and how it ended so far."""

    target: str
    request_id: str
    kind: str
    requested_at: datetime
    status: str
    answered_at: datetime | None
    event_key: str


@dataclass(slots=True)
class ViewerHour:
    """A viewer's views in the current hour against their own EWMA baseline of earlier hours."""

    hour: int
    to_minors: int
    total: int
    minor_authors: int
    baseline_mean: float
    baseline_std: float
    baseline_hours: int
    authors: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ViewShare:
    """The community's views over a trailing window: how many went to minors' content."""

    to_minors: int
    total: int

    @property
    def share(self) -> float:
        return self.to_minors / self.total if self.total else 0.0
