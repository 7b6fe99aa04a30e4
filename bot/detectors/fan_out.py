"""fan_out: an adult (or unknown-age account) starting contact with many distinct minors it shares nothing with."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from groomguard.detectors.base import DetectorState, RampSettings, StoreBackedDetector
from groomguard.events import AgeBand, BaseEvent, ContactKind, ContactRequested
from groomguard.findings import Evidence, Finding
from groomguard.records import Account, ContactEdge
from pydantic import Field

#: Contact made in front of everyone; from a moderator, bot or creator it is the role, not a relationship.
_PUBLIC_KINDS = frozenset({ContactKind.REPLY.value, ContactKind.MENTION.value})

#: Name under which fan_out ranks accounts against their community.
RANK_METRIC = "fan_out.minors"


class FanOutSettings(RampSettings):
    """Thresholds for fan_out; each says what it trades off (the score tops out at 1.0)."""

    ramp_counts = ("min_minors", "saturate_minors")
    ramp_top = None

    window_hours: float = Field(
        24 * 28,
        gt=0,
        le=24 * 30,
        description="rolling window; longer catches slow, low-volume contact, but lets busy benign adults add up",
    )
    min_minors: int = Field(
        6,
        ge=2,
        le=1000,
        description="absolute floor: cold-contacted minors (no mutual, no region) before it fires; lower = earlier, noisier",
    )
    saturate_minors: int = Field(15, ge=3, le=5000, description="cold-contacted minors at which the score reaches 1.0")
    floor_score: float = Field(
        0.6,
        gt=0,
        le=1,
        description="score at the floor; at or above cases.alert_threshold fan_out alerts alone, below it needs another signal",
    )
    min_minor_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of everyone the account reached that were minors; keeps chatty adults who reply to all quiet, "
        "but a groomer who also contacts many adults slips under it",
    )
    rank_quantile: float = Field(
        0.5,
        ge=0.5,
        lt=1,
        description="quantile of the community's per-account counts used as its norm; a low quantile is robust to the "
        "few groomers in it, a high one follows heavy-but-benign accounts",
    )
    rank_factor: float = Field(
        4.0,
        ge=1,
        description="in big communities the count must also reach this many times the norm; higher = fewer alerts where "
        "contacting strangers is common",
    )
    rank_min_population: int = Field(
        200,
        ge=10,
        description="accounts contacting minors needed before the rank rule applies; small communities use the floor alone",
    )
    hub_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="an account with accepted contact to this share of the community's accounts is a hub and never "
        "counts as a mutual; lower = fewer contacts warmed by busy accounts, but well-connected friends stop vouching",
    )
    hub_min_degree: int = Field(
        50,
        ge=2,
        description="a hub also needs at least this many accepted contacts, so in small communities ordinary friends "
        "are not hubs (moderators, bots and room creators never count, whatever their degree)",
    )


@dataclass(frozen=True, slots=True)
class HubRule:
    """When an account is connected to so many others that sharing it proves no personal tie."""

    share: float = 0.1
    min_degree: int = 50

    def threshold(self, community_size: int) -> float:
        return max(float(self.min_degree), self.share * community_size)


async def impersonal(state: DetectorState, community: str, account: str, hubs: HubRule) -> str | None:
    """Why `account` cannot vouch for a connection ("moderator", "bot", "creator", "hub"), or None if it can.

    Moderators, bots and room or space creators invite or admit everyone; a hub is connected to a
    large share of the community by degree. Someone both sides know through one of them may still be
    a stranger to both, so they never make a contact warm.
    """
    acc = await state.account(community, account)
    if acc.standings:
        return sorted(acc.standings)[0]
    degree = await state.accepted_degree(community, account)
    if degree >= hubs.threshold(state.community_size(community)):
        return "hub"
    return None


@dataclass(frozen=True, slots=True)
class MinorContact:
    """One minor an account started contact with, and why it does or does not look like a stranger."""

    edge: ContactEdge
    mutuals: int
    shares_region: bool
    answered_inbound: bool
    #: Mutual contacts left out because they are moderators, bots, creators or hubs.
    impersonal_mutuals: int = 0

    @property
    def cold(self) -> bool:
        return self.mutuals == 0 and not self.shares_region and not self.answered_inbound


async def minors_contacted(
    state: DetectorState, community: str, source: Account, since: datetime, hubs: HubRule | None = None
) -> tuple[list[ContactEdge], set[str]]:
    """Distinct minors `source` started contact with since `since` (first contact each), and all accounts it reached.

    A moderator's, bot's or creator's invitations into rooms are the community's layout at work (the
    moderator who invites every child into `teens`), and so are a hub's; so are a moderator's public
    replies and mentions. They are left out. DMs, friend requests and follows always count.
    """
    seen: dict[str, ContactEdge] = {}
    everyone: set[str] = set()
    layout: bool | None = None
    for edge in await state.contacts_started(community, source.account, since):
        if edge.target == source.account or edge.target in everyone:
            continue
        if source.standings and edge.kind in _PUBLIC_KINDS:
            continue  # a moderator answering children in the open channels is doing the job
        if edge.kind == ContactKind.INVITE.value:
            if layout is None:
                layout = await impersonal(state, community, source.account, hubs or HubRule()) is not None
            if layout:
                continue
        everyone.add(edge.target)
        if (await state.account(community, edge.target)).is_minor:
            seen[edge.target] = edge
    return list(seen.values()), everyone


async def classify(
    state: DetectorState,
    community: str,
    source: Account,
    edges: Sequence[ContactEdge],
    reached: set[str],
    hubs: HubRule | None = None,
) -> list[MinorContact]:
    """Say for each contacted minor whether the two share a mutual accepted contact, a region, or who spoke first.

    A mutual that is a child or unknown-age account the source itself contacted in the window does not
    count: otherwise a groomer's first accepted victims would vouch for the next ones. Nor does a
    moderator, bot, creator or hub (see `impersonal`): the moderator who invited both into the
    community's rooms is no personal connection between them.
    """
    hubs = hubs or HubRule()
    own = await state.accepted_contacts(community, source.account)
    # Adults it reached out to (a coach to the parents) may vouch; children and unknown-age accounts may not.
    unvouched = {e.target for e in edges} | {source.account}
    for account in reached:
        if (await state.account(community, account)).band is not AgeBand.ADULT:
            unvouched.add(account)
    vouching = own - unvouched
    shared = {
        edge.target: (await state.accepted_contacts(community, edge.target)) & vouching - {edge.target}
        for edge in edges
    }
    # Only accounts that actually sit between the two are checked, so a busy source costs little.
    excluded = set()
    for account in set().union(*shared.values()) if shared else ():
        if await impersonal(state, community, account, hubs) is not None:
            excluded.add(account)
    out = []
    for edge in edges:
        target = await state.account(community, edge.target)
        inbound = await state.first_contact(community, edge.target, source.account)
        mutual = shared[edge.target]
        out.append(
            MinorContact(
                edge=edge,
                mutuals=len(mutual - excluded),
                shares_region=bool(source.regions & target.regions),
                answered_inbound=inbound is not None and inbound.at <= edge.at,
                impersonal_mutuals=len(mutual & excluded),
            )
        )
    return out


def span_text(hours: float) -> str:
    """A window as moderators say it: '3 days' or '12 hours'."""
    days = hours / 24
    return f"{days:g} days" if days >= 1 and days == int(days) else f"{hours:g} hours"


def contact_reason(contacts: Sequence[MinorContact], span: str) -> str:
    """'contacted 14 under-18 accounts in 3 days; 13 had no mutual contact; none share a region'."""
    total = len(contacts)
    no_mutual = sum(1 for c in contacts if c.mutuals == 0)
    regional = sum(1 for c in contacts if c.shares_region)
    inbound = sum(1 for c in contacts if c.answered_inbound)
    region_text = "none share a region" if regional == 0 else f"{regional} share a region"
    reason = f"contacted {total} under-18 accounts in {span}; {no_mutual} had no mutual contact; {region_text}"
    via_hub = sum(1 for c in contacts if c.mutuals == 0 and c.impersonal_mutuals)
    if via_hub:
        reason += f"; {via_hub} shared only a moderator, bot, room creator or hub account (not counted)"
    if inbound:
        reason += f"; {inbound} had contacted them first"
    return reason


#: How each kind of first contact reads on a card.
_CONTACT_WORDS = {
    "friend": "friend request",
    "follow": "followed them",
    "dm": "invited them to a private chat",
    "reply": "first reply to them",
    "mention": "first mention of them",
    "invite": "invited them to a room",
}


def contact_evidence(contacts: Sequence[MinorContact], limit: int = 25) -> tuple[Evidence, ...]:
    """One evidence line per contacted minor, cold ones first, with the event that started the contact."""
    ordered = sorted(contacts, key=lambda c: (not c.cold, c.edge.at))
    out = []
    for c in ordered[:limit]:
        # Plain words with the time and the child as fields (cards print them), no event ids.
        facts = [
            _CONTACT_WORDS.get(c.edge.kind, f"{c.edge.kind} contact"),
            "no mutual contact" if c.mutuals == 0 else f"{c.mutuals} mutual contact(s)",
        ]
        if c.impersonal_mutuals:
            facts.append(f"{c.impersonal_mutuals} moderator/hub in common, not counted")
        facts.append("shares region" if c.shares_region else "no shared region")
        if c.answered_inbound:
            facts.append("they contacted first")
        out.append(
            Evidence(kind="account", ref=c.edge.target, label="; ".join(facts), at=c.edge.at, child=c.edge.target)
        )
    return tuple(out)


class FanOutDetector(StoreBackedDetector[FanOutSettings]):
    """Counts distinct minors an account *started* contact with and shares no mutual or region with."""

    name: ClassVar[str] = "fan_out"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (ContactRequested,)

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, ContactRequested) or event.source == event.target:
            return ()
        c, s = event.community, self.settings
        source = await state.account(c, event.source)
        target = await state.account(c, event.target)
        if not source.may_be_adult or not target.is_minor:
            return ()
        window = timedelta(hours=s.window_hours)
        hubs = HubRule(s.hub_share, s.hub_min_degree)
        edges, reached = await minors_contacted(state, c, source, event.at - window, hubs)
        # Cheap test first: most accounts never reach the floor even counting warm contacts.
        if len(edges) < s.min_minors:
            state.record_rank(c, RANK_METRIC, event.source, len(edges), event.at)
            return ()
        contacts = await classify(state, c, source, edges, reached, hubs)
        cold = [x for x in contacts if x.cold]
        # Ranked on cold contacts, so teachers' many warm contacts do not raise the bar for strangers.
        state.record_rank(c, RANK_METRIC, event.source, len(cold), event.at)
        if len(cold) < s.min_minors or not any(x.cold and x.edge.target == event.target for x in contacts):
            return ()
        if len(edges) / len(reached) < s.min_minor_share:
            return ()
        rank = state.rank_threshold(c, RANK_METRIC, event.at, window, s.rank_quantile, s.rank_min_population)
        if rank is not None and len(cold) < s.rank_factor * rank:
            return ()
        return (self._finding(event, contacts, len(cold), rank, len(reached)),)

    def _finding(
        self, event: ContactRequested, contacts: Sequence[MinorContact], cold: int, rank: float | None, reached: int
    ) -> Finding:
        s = self.settings
        score = s.score(cold)
        reason = contact_reason(contacts, span_text(s.window_hours))
        if reached > len(contacts):
            reason += f"; {len(contacts)} of the {reached} accounts it reached were minors"
        if rank is not None:
            reason += f"; {s.rank_factor:g}× or more what {math.floor(s.rank_quantile * 100)}% of accounts here reach ({rank:g})"
        return Finding(
            detector=self.name,
            platform=event.platform,
            community=event.community,
            suspect=event.source,
            score=round(score, 4),
            reason=reason[:500],
            evidence=contact_evidence(contacts),
            at=event.at,
            event_key=event.key,
            child=event.target,
            children=tuple(dict.fromkeys(x.edge.target for x in contacts)),
        )
