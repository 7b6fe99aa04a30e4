"""Runtime wiring: an engine on the store the settings name (the core never picks a store backend itself)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from groomguard.actions import Sink
from groomguard.config import Settings
from groomguard.detectors.base import Detector
from groomguard.engine import Engine
from groomguard.storage import Store
from groomguard.store import open_store


def build_engine(
    settings: Settings,
    sinks: Sequence[Sink] = (),
    *,
    store: Store | None = None,
    detectors: Sequence[Detector] | None = None,
    clock: Callable[[], datetime] | None = None,
    hold_actions: bool = False,
) -> Engine:
    """An engine on `store`, or on the store `settings.store` asks for (SQLite unless a database_url is set)."""
    return Engine(
        settings,
        sinks,
        store=store or open_store(settings.store),
        detectors=detectors,
        clock=clock,
        hold_actions=hold_actions,
    )
