"""What detectors report: a scored, explained finding about one suspect, with evidence references."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Evidence(BaseModel):
    """A pointer a moderator can follow: what kind of thing, its id, and a short label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description="e.g. account, request, message, view_bucket, conversation")
    ref: str = Field(description="the platform id of the thing (event id, message id, account id)")
    label: str = Field(default="", max_length=300, description="one line a moderator can read")
    #: When the thing happened (a message, a request, an hour of views); cards print it.
    at: datetime | None = None
    #: The child this item is about, when there is one; cards name the child beside the item.
    child: str | None = None


class Finding(BaseModel):
    """One detector's judgement about `suspect`, with a plain-words reason and its evidence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: str
    platform: str
    community: str
    suspect: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    reason: str = Field(max_length=500)
    evidence: tuple[Evidence, ...] = ()
    at: datetime
    event_key: str = Field(description="the event that produced this finding")
    #: The child this finding protects, when there is one (language, fan-out to a minor).
    child: str | None = None
    #: Every child the finding counts (fan_out's contacted minors, rejections' refusers); cards list them all.
    children: tuple[str, ...] = ()
    #: Ask for a kind, private notice to `child` (rate-limited downstream).
    notify_child: bool = False
    #: Grooming stages seen, for language findings; also shapes the child notice.
    stages: tuple[str, ...] = ()
