"""The web view served from a thread for the browser tests, with the synthetic cases (tests/web_scenario.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from groomguard.app.runtime import build_engine
from groomguard.app.web import WebView, auth
from groomguard.config import WebModerator
from groomguard.testing import MemorySink, make_settings

from tests.web_scenario import communities

T = TypeVar("T")
ALICE = "alice-browser-token-0123456789"


class Clock:
    """The web view's wall clock, moved by the test (read from the server's thread)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class LiveSite:
    """An engine with the synthetic cases and the web view on a free 127.0.0.1 port, in its own thread."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.clock = Clock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="web-view", daemon=True)

    def start(self) -> LiveSite:
        self.thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("web view did not start in 60 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        try:
            settings = make_settings(self.db)
            settings.web.port = self.port
            settings.web.session_minutes = 30
            settings.web.moderators = {"alice": WebModerator(token_sha256=auth.digest(ALICE))}
            self.sink = MemorySink()
            self.engine = build_engine(settings, [self.sink], clock=self.clock)
            await self.engine.start()
            for event in communities():
                await self.engine.submit(event)
            await self.engine.drain()
            self.view = WebView(settings, self.engine, clock=self.clock)
            await self.view.start()
            self._stop = asyncio.Event()
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.view.stop()
            await self.engine.stop()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (store reads, link creation) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
