"""new_account_contact: an account only days old that starts contact with minors it shares nothing with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from groomguard.detectors.base import DetectorState, RampSettings, StoreBackedDetector
from groomguard.detectors.fan_out import (
    HubRule,
    classify,
    contact_evidence,
    contact_reason,
    minors_contacted,
    span_text,
)
from groomguard.events import BaseEvent, ContactRequested
from groomguard.findings import Finding
from groomguard.records import Account
from pydantic import Field


class NewAccountSettings(RampSettings):
    """Thresholds for new_account_contact; each says what it trades off."""

    ramp_counts = ("min_minors", "saturate_minors")

    max_account_age_hours: float = Field(
        24 * 7,
        gt=0,
        le=24 * 90,
        description="how young an account must be (platform account age, else time since it joined); longer = more new adults watched",
    )
    min_minors: int = Field(
        3,
        ge=1,
        le=1000,
        description="cold-contacted minors (no mutual, no region) a new account needs; lower = earlier, flags new parents and coaches",
    )
    saturate_minors: int = Field(8, ge=2, le=5000, description="cold-contacted minors at which the score tops out")
    floor_score: float = Field(
        0.4,
        gt=0,
        le=1,
        description="score at the floor; kept below the alert threshold so it mostly adds to other signals",
    )
    top_score: float = Field(0.7, gt=0, le=1, description="score at saturate_minors")
    hub_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="as fan_out.hub_share: accounts connected to this share of the community never vouch",
    )
    hub_min_degree: int = Field(50, ge=2, description="as fan_out.hub_min_degree: the least degree a hub needs")


def account_age_hours(account: Account, now_hours: float) -> float | None:
    """Hours since the account was created (or joined, or was first seen); None if unknown."""
    born = account.created_at or account.joined_at or account.first_seen
    if born is None:
        return None
    return now_hours - born.timestamp() / 3600


class NewAccountDetector(StoreBackedDetector[NewAccountSettings]):
    """Flags accounts younger than a few days that start contact with several unconnected minors."""

    name: ClassVar[str] = "new_account_contact"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (ContactRequested,)

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, ContactRequested) or event.source == event.target:
            return ()
        c, s = event.community, self.settings
        source = await state.account(c, event.source)
        if not source.may_be_adult or not (await state.account(c, event.target)).is_minor:
            return ()
        age = account_age_hours(source, event.at.timestamp() / 3600)
        if age is None or age > s.max_account_age_hours:
            return ()
        hubs = HubRule(s.hub_share, s.hub_min_degree)
        since = event.at - timedelta(hours=s.max_account_age_hours)
        edges, reached = await minors_contacted(state, c, source, since, hubs)
        if len(edges) < s.min_minors:
            return ()
        contacts = await classify(state, c, source, edges, reached, hubs)
        cold = sum(1 for x in contacts if x.cold)
        if cold < s.min_minors or not any(x.cold and x.edge.target == event.target for x in contacts):
            return ()
        score = s.score(cold)
        reason = f"account is {span_text(round(max(age, 1)))} old and " + contact_reason(contacts, "that time")
        return (
            Finding(
                detector=self.name,
                platform=event.platform,
                community=c,
                suspect=event.source,
                score=round(score, 4),
                reason=reason[:500],
                evidence=contact_evidence(contacts),
                at=event.at,
                event_key=event.key,
                child=event.target,
                children=tuple(dict.fromkeys(x.edge.target for x in contacts)),
            ),
        )
