"""new_account_contact and age_text on hand-built scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest
from detector_harness import engine_with, feed
from groomguard.detectors.age_text import AgeTextDetector, AgeTextSettings, stated_age
from groomguard.detectors.fan_out import FanOutDetector, FanOutSettings
from groomguard.detectors.new_account import NewAccountDetector, NewAccountSettings
from groomguard.events import AgeBand, AgeSource
from groomguard.testing import EventFactory

KIDS = [f"kid{i}" for i in range(8)]


def kids(f: EventFactory, region: str | None = None) -> list:
    out = []
    for i, k in enumerate(KIDS):
        out += [f.joined(k), f.minor(k), f.region(k, region or f"town{i}")]
    return out


def new_account() -> NewAccountDetector:
    return NewAccountDetector(NewAccountSettings())


async def test_days_old_account_contacting_unconnected_minors_fires(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f), f.joined("fresh", created_days_ago=1)]
    events += [f.contact("fresh", k, at=f.tick(hours=2)) for k in KIDS[:3]]
    async with engine_with(tmp_path / "db", [new_account()]) as (engine, rec):
        await feed(engine, events, one_by_one=True)
    assert len(rec.findings) == 1
    assert rec.findings[0].reason.startswith(
        "account is 30 hours old and contacted 3 under-18 accounts in that time; 3 had no mutual"
    )
    assert rec.findings[0].score == pytest.approx(0.4)


async def test_old_account_is_left_to_fan_out(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f), f.joined("old", created_days_ago=400)]
    events += [f.contact("old", k, at=f.tick(hours=2)) for k in KIDS[:5]]
    async with engine_with(tmp_path / "db", [new_account()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_new_parent_in_the_same_region_is_silent(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f, region="north"), f.joined("parent", created_days_ago=0.5), f.region("parent", "north")]
    events += [f.contact("parent", k, at=f.tick(hours=1)) for k in KIDS]
    async with engine_with(tmp_path / "db", [new_account()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []


async def test_window_edge_account_age(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f), f.joined("week_old", created_days_ago=6.9)]
    events += [f.contact("week_old", k, at=f.tick(hours=1)) for k in KIDS[:3]]
    async with engine_with(tmp_path / "db", [new_account()]) as (engine, rec):
        await feed(engine, events)
    assert rec.findings == []  # 6.9 days + 3 hours is past the 7-day limit by the third contact


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("im 13", 13),
        ("I'm 12 lol", 12),
        ("i am only 11", 11),
        ("13 y/o here", 13),
        ("14yo", 14),
        ("15 years old btw", 15),
        ("13f", 13),
        ("asl? 14/f/uk", 14),
        ("i'm in year 8", 12),
        ("im in 7th grade", 12),
        ("im a 9th grader", 14),
        ("my age is 10", 10),
    ],
)
def test_stated_age_reads_common_forms(text: str, age: int) -> None:
    assert stated_age(text) == age


@pytest.mark.parametrize(
    "text",
    [
        "im 13 mins away",
        "im 2 levels ahead",
        "i'm 12th in the queue",
        "my sister is 13 years old",
        "are you 13?",
        "year 8 maths is hard",
        "im 5'11",
        "im 100% sure",
        "we won 13-2",
    ],
)
def test_stated_age_ignores_other_numbers(text: str) -> None:
    assert stated_age(text) is None


async def test_text_marks_unknown_account_a_minor_and_fan_out_then_protects_it(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f), f.joined("quiet"), f.joined("stranger"), f.adult("stranger")]
    events.append(f.message("quiet", "hi im 13 and new here"))
    events += [f.contact("stranger", k, at=f.tick(hours=1)) for k in ["quiet", *KIDS[:5]]]
    detectors = [AgeTextDetector(AgeTextSettings()), FanOutDetector(FanOutSettings())]
    async with engine_with(tmp_path / "db", detectors) as (engine, rec):
        await feed(engine, events)
        quiet = await engine.state.account("test-community", "quiet")
    assert quiet.band is AgeBand.MINOR and quiet.band_source == AgeSource.TEXT.value and quiet.age == 13
    assert len(rec.findings) == 1 and "quiet" in {e.ref for e in rec.findings[0].evidence}
    # Restart: the inferred band was stored with the batch.
    async with engine_with(tmp_path / "db", detectors) as (engine, _rec):
        assert (await engine.state.account("test-community", "quiet")).is_minor


async def test_text_never_relaxes_and_never_marks_an_adult(tmp_path: Path) -> None:
    f = EventFactory()
    events = [f.joined("grown"), f.adult("grown"), f.joined("kid"), f.minor("kid"), f.joined("anon")]
    events += [f.message("grown", "im 13 lol jk"), f.message("kid", "im 19"), f.message("anon", "i am 25")]
    async with engine_with(tmp_path / "db", [AgeTextDetector(AgeTextSettings())]) as (engine, _rec):
        await feed(engine, events)
        bands = {a: (await engine.state.account("test-community", a)).band for a in ("grown", "kid", "anon")}
    assert bands == {"grown": AgeBand.ADULT, "kid": AgeBand.MINOR, "anon": AgeBand.UNKNOWN}


async def test_adult_posing_as_a_child_is_still_watched(tmp_path: Path) -> None:
    f = EventFactory()
    events = [*kids(f), f.joined("poser"), f.message("poser", "im 14 too!!")]
    events += [f.contact("poser", k, at=f.tick(hours=1)) for k in KIDS[:6]]
    detectors = [AgeTextDetector(AgeTextSettings()), FanOutDetector(FanOutSettings())]
    async with engine_with(tmp_path / "db", detectors) as (engine, rec):
        await feed(engine, events)
    assert [x.suspect for x in rec.findings] == ["poser"]
