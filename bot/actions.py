"""Platform-neutral actions the engine asks adapters to carry out, and the sink protocol they implement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Protocol, runtime_checkable

from groomguard.events import Decision
from groomguard.findings import Evidence
from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    """One line of an alert: which detector, what it saw in plain words, how strongly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: str
    text: str
    score: float
    #: The detector in plain words ("Contacting many children"); cards show this, never the detector name.
    title: str = ""


class ModAlert(BaseModel):
    """An alert card for moderators; `version` > 1 means edit the card already posted for `case_id`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mod_alert"] = "mod_alert"
    action_id: str
    platform: str
    community: str
    case_id: int
    version: int = 1
    suspect: str
    #: Risk now (at the community's latest event time when the card was made); `peak` is the highest it reached.
    risk: Annotated[float, Field(ge=0, le=1)]
    peak: Annotated[float, Field(ge=0, le=1)] = 0.0
    #: One plain line saying what the risk number means (printed on every card).
    risk_note: str = ""
    status: str = "open"
    reasons: tuple[Reason, ...]
    evidence: tuple[Evidence, ...] = ()
    #: Every child the case counts (cards list them all, each openable by the moderator).
    children: tuple[str, ...] = ()
    choices: tuple[Decision, ...] = tuple(Decision)
    #: The risk in words ("moderate", "high"...) and what moderators should do about it.
    band: str = ""
    recommended: str = ""
    #: On an edit, what changed since the card as last posted (the first card has none).
    changes: tuple[str, ...] = ()
    at: datetime

    @property
    def is_update(self) -> bool:
        return self.version > 1


class ChildNotice(BaseModel):
    """A kind, private message to a young user; never names the detector, the score or the suspect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["child_notice"] = "child_notice"
    action_id: str
    platform: str
    community: str
    child: str
    text: str
    helpline: str
    #: Language of `text` (notices.locale of the community).
    locale: str = "en"
    case_id: int | None = Field(default=None, description="for the moderators' record only")
    at: datetime


class Enforcement(BaseModel):
    """A moderator-approved platform action against a suspect (time out, ban)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["enforcement"] = "enforcement"
    action_id: str
    platform: str
    community: str
    case_id: int
    suspect: str
    decision: Decision
    duration_minutes: int | None = None
    moderator: str
    reason: str
    at: datetime


#: Any action, as a type (ActionT) and as a pydantic discriminated union for parsing (Action).
ActionT = ModAlert | ChildNotice | Enforcement
Action = Annotated[ActionT, Field(discriminator="kind")]


@runtime_checkable
class Sink(Protocol):
    """Where actions go: an adapter's mod channel and DMs, a terminal, a file. Must be idempotent on action_id."""

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None: ...
