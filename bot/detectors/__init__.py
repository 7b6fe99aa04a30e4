"""The detector registry: every detector, its summary, settings model and factory, in one explicit list."""

from __future__ import annotations

from groomguard.detectors.age_text import AgeTextDetector, AgeTextSettings
from groomguard.detectors.base import DetectorSpec
from groomguard.detectors.fan_out import FanOutDetector, FanOutSettings
from groomguard.detectors.grooming_language import GroomingLanguageDetector, GroomingLanguageSettings
from groomguard.detectors.new_account import NewAccountDetector, NewAccountSettings
from groomguard.detectors.rejections import RejectionsDetector, RejectionsSettings
from groomguard.detectors.view_spike import ViewSpikeDetector, ViewSpikeSettings

REGISTRY: list[DetectorSpec] = [
    # age_text runs first so a child who says "im 13" is protected by every detector on that same event.
    DetectorSpec(
        name="age_text",
        summary="a self-stated under-18 age in a message marks the author a likely minor (only ever tightens)",
        settings_model=AgeTextSettings,
        factory=AgeTextDetector,
    ),
    DetectorSpec(
        name="fan_out",
        summary="adults starting contact with many distinct minors in a short window",
        settings_model=FanOutSettings,
        factory=FanOutDetector,
    ),
    DetectorSpec(
        name="grooming_language",
        summary="grooming language from an adult or unknown-age account to a minor, per conversation",
        settings_model=GroomingLanguageSettings,
        factory=GroomingLanguageDetector,
    ),
    DetectorSpec(
        name="rejections",
        summary="requests to minors that were rejected or left unanswered, by count and ratio",
        settings_model=RejectionsSettings,
        factory=RejectionsDetector,
    ),
    DetectorSpec(
        name="view_spike",
        summary="a spike in views of minors' content against the viewer's own baseline and the community's",
        settings_model=ViewSpikeSettings,
        factory=ViewSpikeDetector,
    ),
    DetectorSpec(
        name="new_account_contact",
        summary="an account only days old that starts contact with several unconnected minors",
        settings_model=NewAccountSettings,
        factory=NewAccountDetector,
    ),
]
