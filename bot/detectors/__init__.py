"""The detector registry: every detector, its summary, settings model and factory, in one explicit list."""

from __future__ import annotations

from bot.detectors.base import DetectorSpec
from bot.detectors.fan_out import FanOutDetector, FanOutSettings

REGISTRY: list[DetectorSpec] = [
    DetectorSpec(
        name="fan_out",
        summary="adults starting contact with many distinct minors in a short window",
        settings_model=FanOutSettings,
        factory=FanOutDetector,
    ),
]
