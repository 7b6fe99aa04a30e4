"""The detector contract: every detector has the Protocol's members, and the ramp detectors share RampSettings."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from groomguard.app.runtime import build_engine
from groomguard.config import Settings
from groomguard.detectors import REGISTRY
from groomguard.detectors.base import DETECTOR_MEMBERS, RampSettings, check_detector, ramp
from groomguard.detectors.fan_out import FanOutSettings
from groomguard.detectors.new_account import NewAccountSettings
from groomguard.detectors.rejections import RejectionsSettings
from groomguard.detectors.view_spike import ViewSpikeSettings
from groomguard.engine import build_detectors
from groomguard.events import BaseEvent, MessageSent
from groomguard.findings import Finding
from groomguard.testing import EventFactory, make_settings
from pydantic import ValidationError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "groomguard.toml"
RAMPS: dict[str, type[RampSettings]] = {
    "fan_out": FanOutSettings,
    "new_account_contact": NewAccountSettings,
    "rejections": RejectionsSettings,
    "view_spike": ViewSpikeSettings,
}


def test_every_registry_detector_has_the_protocol_members(tmp_path: Path) -> None:
    detectors = build_detectors(make_settings(tmp_path / "gg.db"))
    assert [d.name for d in detectors] == [spec.name for spec in REGISTRY]
    for detector in detectors:
        assert check_detector(detector) is detector
        assert detector.enabled is True
        assert detector.handles and all(issubclass(t, BaseEvent) for t in detector.handles), detector.name
        detector.forget("nobody", None)  # callable on every detector, whether or not it keeps anything


def test_a_disabled_detector_is_not_built_and_reports_itself_disabled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "gg.db", detectors__rejections__enabled=False)
    assert "rejections" not in {d.name for d in build_detectors(settings)}
    spec = next(s for s in REGISTRY if s.name == "rejections")
    assert spec.factory(spec.settings_model(enabled=False)).enabled is False


class _NoForget:
    name: ClassVar[str] = "no_forget"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True

    async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
        return ()


def test_the_engine_refuses_a_detector_without_the_protocol_members(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"_NoForget is not a detector: it lacks forget"):
        build_engine(make_settings(tmp_path / "gg.db"), [], detectors=[_NoForget()])  # type: ignore[list-item]
    assert DETECTOR_MEMBERS == ("name", "handles", "enabled", "inspect", "forget")


async def test_a_detector_that_reports_itself_disabled_is_never_fed(tmp_path: Path, ev: EventFactory) -> None:
    seen: list[str] = []

    class Switchable:
        name: ClassVar[str] = "switchable"
        handles: ClassVar[tuple[type[BaseEvent], ...]] = (BaseEvent,)

        def __init__(self, enabled: bool) -> None:
            self.enabled = enabled

        def forget(self, account: str, community: str | None = None) -> None:
            seen.append(f"forget {account}")

        async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
            seen.append(f"{'on' if self.enabled else 'off'} {event.type}")  # type: ignore[attr-defined]
            return ()

    engine = build_engine(make_settings(tmp_path / "gg.db"), [], detectors=[Switchable(False), Switchable(True)])
    await engine.start()
    await engine.ingest([ev.message("a", "hi")])
    await engine.forget("a")
    await engine.stop()
    assert seen == ["on message_sent", "forget a"]


@pytest.mark.parametrize("section", sorted(RAMPS))
def test_ramp_settings_keep_their_documented_keys_in_order(section: str) -> None:
    documented = tomllib.loads(EXAMPLE.read_text())["detectors"][section]
    model = RAMPS[section]
    assert list(model.model_fields) == list(documented), "the TOML keys (and their order) are the documented ones"
    assert type(getattr(Settings().detectors, section)) is model


@pytest.mark.parametrize("section", sorted(RAMPS))
def test_ramp_settings_refuse_counts_and_scores_out_of_order(section: str) -> None:
    model = RAMPS[section]
    low, high = model.ramp_counts
    floor = model.model_fields[low].default
    with pytest.raises(ValidationError, match=f"{high} must be greater than {low}"):
        model(**{high: floor})
    if model.ramp_top is not None:
        with pytest.raises(ValidationError, match=f"{model.ramp_top} must be at least floor_score"):
            model(floor_score=0.8, **{model.ramp_top: 0.5})
    else:
        with pytest.raises(ValidationError, match="top_score"):
            model(top_score=0.9)  # fan_out has no top_score key: it tops out at 1.0


@pytest.mark.parametrize("section", sorted(RAMPS))
def test_ramp_score_is_the_ramp_of_the_settings(section: str) -> None:
    s = RAMPS[section]()
    low, high = (getattr(s, name) for name in s.ramp_counts)
    top = getattr(s, s.ramp_top) if s.ramp_top else 1.0
    assert s.score(low - 1) == s.score(low) == s.floor_score
    assert s.score(high) == s.score(high * 10) == top
    middle = (low + high) / 2
    assert s.score(middle) == ramp(middle, low, high, s.floor_score, top)
    assert s.progress(low) == 0.0 and s.progress(high) == 1.0 and s.progress(middle) == pytest.approx(0.5)


def test_fan_out_scores_as_before() -> None:
    s = FanOutSettings()
    assert (s.score(6), s.score(10.5), s.score(15)) == (0.6, pytest.approx(0.8), 1.0)


def test_a_ramp_naming_a_field_it_lacks_fails_at_import() -> None:
    with pytest.raises(TypeError, match="names ramp fields it does not declare: saturate_things"):

        class Broken(RampSettings):
            ramp_counts = ("min_things", "saturate_things")
            ramp_top = None
            min_things: int = 3
            floor_score: float = 0.5
