"""The interpreter's pace while engines run (groomguard.tuning): set on start, given back on the last stop."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from groomguard import tuning
from groomguard.app.runtime import build_engine
from groomguard.engine import Engine
from groomguard.testing import make_settings


@pytest.fixture(autouse=True)
def host_pace(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[tuple[int, int, int], float]]:
    """A host process with settings of its own, which every test must find again at its end.

    Engines other tests left running (never stopped) are out of sight here: no ask is held at the start.
    """
    monkeypatch.setattr(tuning, "_asked", [])
    monkeypatch.setattr(tuning, "_saved", None)
    saved = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(900, 11, 12)
    sys.setswitchinterval(0.004)
    yield (900, 11, 12), 0.004
    assert _pace() == (900, 11, 12, 0.004), "an engine kept its pace"
    gc.set_threshold(*saved[0])
    sys.setswitchinterval(saved[1])


def _engine(path: Path, **engine: int) -> Engine:
    return build_engine(make_settings(path, **{f"engine__{k}": v for k, v in engine.items()}), [])


def _pace() -> tuple[int, int, int, float]:
    young, older, oldest = gc.get_threshold()
    # The interpreter keeps whole microseconds, cut down: 0.0001 reads back as 9.9e-05.
    return young, older, oldest, round(sys.getswitchinterval(), 5)


async def test_a_running_engine_paces_the_interpreter_and_gives_it_back(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "a.db", gc_young_threshold=40_000, switch_interval_us=300)
    await engine.start()
    # Only the young threshold and the interval move; the older generations keep the host's ratios.
    assert _pace() == (40_000, 11, 12, 0.0003)
    await engine.stop()
    assert _pace() == (900, 11, 12, 0.004)
    await engine.stop()  # a second stop gives nothing back twice
    assert _pace() == (900, 11, 12, 0.004)


async def test_two_engines_keep_the_strongest_ask_until_the_last_stops(tmp_path: Path) -> None:
    first = _engine(tmp_path / "a.db", gc_young_threshold=20_000, switch_interval_us=500)
    second = _engine(tmp_path / "b.db", gc_young_threshold=60_000, switch_interval_us=800)
    await first.start()
    await second.start()
    assert _pace() == (60_000, 11, 12, 0.0005)
    await second.stop()
    assert _pace() == (20_000, 11, 12, 0.0005)
    await first.stop()
    assert _pace() == (900, 11, 12, 0.004)


async def test_zero_leaves_the_host_settings_alone(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "a.db", gc_young_threshold=0, switch_interval_us=0)
    await engine.start()
    assert _pace() == (900, 11, 12, 0.004)
    await engine.stop()


async def test_a_host_that_collects_more_eagerly_than_asked_keeps_its_pace(tmp_path: Path) -> None:
    # A higher threshold or a shorter interval than the engine's is the host's choice, never undone.
    gc.set_threshold(90_000, 11, 12)
    sys.setswitchinterval(0.0001)
    engine = _engine(tmp_path / "a.db", gc_young_threshold=50_000, switch_interval_us=200)
    await engine.start()
    assert _pace() == (90_000, 11, 12, 0.0001)
    await engine.stop()
    assert _pace() == (90_000, 11, 12, 0.0001)
    gc.set_threshold(900, 11, 12)
    sys.setswitchinterval(0.004)


async def test_a_failed_start_gives_the_pace_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tmp_path / "a.db", gc_young_threshold=40_000, switch_interval_us=300)

    async def broken() -> None:
        raise RuntimeError("memory could not be rebuilt")

    monkeypatch.setattr(engine, "_load", broken)
    with pytest.raises(RuntimeError, match="rebuilt"):
        await engine.start()
    assert _pace() == (900, 11, 12, 0.004)
    await engine.store.close()
