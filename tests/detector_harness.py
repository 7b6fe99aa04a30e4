"""Shared harness for detector tests: a real engine on SQLite with only the detectors under test, recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from groomguard.app.runtime import build_engine
from groomguard.detectors.base import Detector, DetectorState
from groomguard.engine import Engine
from groomguard.events import BaseEvent
from groomguard.findings import Finding
from groomguard.testing import MemorySink, make_settings


class Recorder:
    """Wraps a detector and keeps every finding it returns, in order."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        self.handles = inner.handles
        self.findings: list[Finding] = []

    @property
    def enabled(self) -> bool:
        return self.inner.enabled

    def forget(self, account: str, community: str | None = None) -> None:
        self.inner.forget(account, community)

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        out = await self.inner.inspect(event, state)
        self.findings.extend(out)
        return out


@asynccontextmanager
async def engine_with(
    db: Path, detectors: Sequence[Detector], **overrides: Any
) -> AsyncIterator[tuple[Engine, Recorder]]:
    """An engine whose only detectors are `detectors`; yields it and the recorder of the last one."""
    recorders = [Recorder(d) for d in detectors]
    engine = build_engine(make_settings(db, **overrides), [MemorySink()], detectors=recorders)
    await engine.start()
    try:
        yield engine, recorders[-1]
    finally:
        await engine.stop()


async def feed(engine: Engine, events: Sequence[BaseEvent], one_by_one: bool = False) -> None:
    """Ingest events as one batch (or one batch each, to cross commit boundaries)."""
    if one_by_one:
        for event in events:
            await engine.ingest([event])
    else:
        await engine.ingest(list(events))
