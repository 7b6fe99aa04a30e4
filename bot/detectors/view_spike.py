"""view_spike: a viewer suddenly seeing far more of minors' content than their own habit and the community's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from groomguard.detectors.base import DetectorState, RampSettings, StoreBackedDetector, ramp
from groomguard.events import BaseEvent, ContentViewed
from groomguard.findings import Evidence, Finding
from groomguard.records import Account
from pydantic import Field


class ViewSpikeSettings(RampSettings):
    """Thresholds for view_spike; each says what it trades off."""

    ramp_counts = ("min_views", "saturate_views")

    ewma_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="weight of each new hour in the viewer's baseline; higher adapts faster, so a slow build-up hides",
    )
    z: float = Field(
        4.0,
        gt=0,
        description="deviations above the viewer's own baseline an hour must reach; lower = more sensitive, more noise",
    )
    min_std: float = Field(
        3.0,
        gt=0,
        description="smallest deviation assumed, so a viewer with no history is not flagged for a handful of views",
    )
    min_views: int = Field(
        25,
        ge=1,
        description="views of minors' content in one hour before it fires; lower = earlier, flags more keen parents",
    )
    min_minor_authors: int = Field(
        4,
        ge=1,
        description="distinct minors viewed that hour who share no region or accepted contact with the viewer; keeps "
        "parents and local youth workers quiet",
    )
    saturate_minor_authors: int = Field(
        12, ge=2, description="distinct unconnected minors in an hour at which the score tops out"
    )
    share_ratio: float = Field(
        2.0,
        ge=1,
        description="the viewer's share of views going to minors must be this many times the community's; busy adults who view everyone stay quiet",
    )
    community_hours: int = Field(
        168, ge=1, le=24 * 14, description="trailing hours for the community's share of views going to minors"
    )
    saturate_views: int = Field(80, ge=2, description="views of minors' content in an hour at which the score tops out")
    floor_score: float = Field(
        0.5, gt=0, le=1, description="score at min_views; below the alert threshold it needs help"
    )
    top_score: float = Field(0.85, gt=0, le=1, description="score at saturate_views")


class ViewSpikeDetector(StoreBackedDetector[ViewSpikeSettings]):
    """Compares a viewer's hourly views of minors' content to their EWMA baseline and the community's share."""

    name: ClassVar[str] = "view_spike"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (ContentViewed,)

    # What it remembers, "fired for this viewer this hour at N views" (one finding per hour unless
    # the views double), lives in the detector memory under the viewer's id, so a restart in the
    # middle of a burst neither repeats the finding nor forgets it (groomguard.detectors.base.DetectorMemory).

    @staticmethod
    async def _cold_authors(state: DetectorState, community: str, viewer: Account, authors: frozenset[str]) -> set[str]:
        """Minors viewed who share no region and no accepted contact with the viewer."""
        own = await state.accepted_contacts(community, viewer.account)
        cold = set()
        for author in authors:
            if author in own:
                continue
            if viewer.regions & (await state.account(community, author)).regions:
                continue
            cold.add(author)
        return cold

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, ContentViewed) or event.viewer == event.author:
            return ()
        c, s = event.community, self.settings
        author = await state.account(c, event.author)
        if not author.is_minor:
            return ()
        viewer = await state.account(c, event.viewer)
        if not viewer.may_be_adult:
            return ()
        hour = await state.viewer_hour(c, event.viewer, event.at, s.ewma_alpha)
        if hour.to_minors < s.min_views or hour.minor_authors < s.min_minor_authors:
            return ()
        cold = await self._cold_authors(state, c, viewer, hour.authors)
        if len(cold) < s.min_minor_authors:
            return ()
        limit = hour.baseline_mean + s.z * max(hour.baseline_std, s.min_std)
        if hour.to_minors <= limit:
            return ()
        community = await state.community_views(c, event.at, s.community_hours)
        share = hour.to_minors / hour.total if hour.total else 0.0
        needed = min(0.95, s.share_ratio * community.share)
        if share < needed:
            return ()
        memory = state.memory(self.name)
        fired = await memory.get(c, event.viewer, at=event.at)
        if fired is not None and fired[0] == hour.hour and hour.to_minors < 2 * fired[1]:
            return ()
        memory.put(
            c,
            event.viewer,
            [hour.hour, hour.to_minors],
            accounts=(event.viewer,),
            expires_at=datetime.fromtimestamp((hour.hour + 1) * 3600, UTC),
        )
        # Whichever measure is further along its ramp sets the score (both are at or past their floor here).
        by_views = s.progress(hour.to_minors)
        by_authors = ramp(
            len(cold), s.min_minor_authors, max(s.min_minor_authors + 1, s.saturate_minor_authors), 0.0, 1.0
        )
        score = ramp(max(by_views, by_authors), 0.0, 1.0, s.floor_score, s.top_score)
        reason = (
            f"viewed {hour.to_minors} posts by {hour.minor_authors} under-18 accounts in one hour "
            f"({len(cold)} with no shared region or contact); "
            f"usual is {hour.baseline_mean:.1f} ± {hour.baseline_std:.1f} an hour; "
            f"{share:.0%} of their views went to minors against {community.share:.0%} across the community"
        )
        evidence = (
            Evidence(
                kind="view_bucket",
                ref=f"{event.viewer}@{hour.hour}",
                label=f"{hour.to_minors} of {hour.total} views that hour went to children's posts",
                at=event.at.replace(minute=0, second=0, microsecond=0),
            ),
            *(
                Evidence(kind="account", ref=a, label="their posts were viewed that hour", child=a, at=event.at)
                for a in sorted(cold)[:20]
            ),
            Evidence(
                kind="account",
                ref=event.author,
                label="the latest child whose post was viewed",
                child=event.author,
                at=event.at,
            ),
        )
        return (
            Finding(
                detector=self.name,
                platform=event.platform,
                community=c,
                suspect=event.viewer,
                score=round(score, 4),
                reason=reason,
                evidence=evidence,
                at=event.at,
                event_key=event.key,
            ),
        )
