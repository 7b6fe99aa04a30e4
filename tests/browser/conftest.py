"""Browser fixtures: Debian's headless Chromium driven by selenium, and the web view served from a thread."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from groomguard.config import WebModerator
from groomguard.engine import Engine
from groomguard.sinks import MemorySink
from groomguard.testing import make_settings
from groomguard.web import WebView, auth

from tests.services import missing_service
from tests.web_scenario import communities

T = TypeVar("T")
ALICE = "alice-browser-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:
    missing_service("selenium is not installed: pip install 'groomguard[test]'", module=True)


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
            self.engine = Engine(settings, [self.sink], clock=self.clock)
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


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LiveSite]:
    live = LiveSite(tmp_path / "web.db").start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's packages (never a downloaded browser)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not (
        shutil.which("chromium") and shutil.which("chromedriver")
    ):
        missing_service("chromium and chromium-driver are not installed: run tests/browser/setup.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def fresh(browser: Any) -> Any:
    """The browser with no cookies from an earlier test."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    return browser
