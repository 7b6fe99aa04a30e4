"""fan_out: an adult (or unknown-age account) starting contact with many distinct minors in a window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bot.detectors.base import DetectorState
from bot.events import BaseEvent, ContactRequested
from bot.findings import Evidence, Finding


class FanOutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="turn the detector on or off")
    window_hours: float = Field(
        72, gt=0, le=24 * 30, description="rolling window; longer catches slow contact, costs more false alerts"
    )
    min_minors: int = Field(
        5, ge=2, le=1000, description="distinct minors contacted before it fires; lower = earlier, noisier"
    )
    saturate_minors: int = Field(15, ge=3, le=5000, description="count at which the score reaches 1.0")


class FanOutDetector:
    """Counts distinct minors an account *started* contact with; inbound contact never counts."""

    name: ClassVar[str] = "fan_out"

    def __init__(self, settings: FanOutSettings) -> None:
        self.settings = settings

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, ContactRequested) or event.source == event.target:
            return ()
        source = await state.account(event.community, event.source)
        target = await state.account(event.community, event.target)
        if not source.may_be_adult or not target.is_minor:
            return ()
        window = timedelta(hours=self.settings.window_hours)
        edges = await state.contacts_started(event.community, event.source, event.at - window)
        minors: dict[str, str] = {}
        for edge in edges:
            if edge.target not in minors and (await state.account(event.community, edge.target)).is_minor:
                minors[edge.target] = edge.event_key
        count = len(minors)
        if count < self.settings.min_minors:
            return ()
        s = self.settings
        score = min(1.0, 0.55 + 0.45 * (count - s.min_minors) / max(1, s.saturate_minors - s.min_minors))
        days = s.window_hours / 24
        span = f"{days:g} days" if days >= 1 else f"{s.window_hours:g} hours"
        return (
            Finding(
                detector=self.name,
                platform=event.platform,
                community=event.community,
                suspect=event.source,
                score=score,
                reason=f"started contact with {count} under-18 accounts in {span}",
                evidence=tuple(
                    Evidence(kind="account", ref=minor, label=f"contacted (event {key})")
                    for minor, key in list(minors.items())[:25]
                ),
                at=event.at,
                event_key=event.key,
                child=event.target,
            ),
        )
