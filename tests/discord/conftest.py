"""Fixtures for the Discord adapter tests; the harness itself lives in dpy_harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from discord.ext import commands
from discord.webhook.async_ import AsyncWebhookAdapter
from dpy_harness import Harness, Rest, ScriptedLanguageDetector, discord_settings, stop
from groomguard.adapters.discord import DiscordAdapter
from groomguard.adapters.discord.checks import required_intents
from groomguard.app.runtime import build_engine
from groomguard.config import Settings
from groomguard.detectors.fan_out import FanOutDetector, FanOutSettings


@pytest.fixture
def rest(monkeypatch: pytest.MonkeyPatch) -> Rest:
    recorder = Rest()

    async def webhook_request(adapter: AsyncWebhookAdapter, route: Any, session: Any = None, **kwargs: Any) -> Any:
        return await recorder.webhook_request(adapter, route, session, **kwargs)

    monkeypatch.setattr(AsyncWebhookAdapter, "request", webhook_request)
    return recorder


@pytest.fixture
async def make_harness(tmp_path: Path, rest: Rest) -> AsyncIterator[Callable[..., Any]]:
    """Build harnesses on one database; `connect=False` leaves the gateway frames to the test."""
    made: list[Harness] = []

    async def build(
        connect: bool = True, settings: Settings | None = None, detectors: list[Any] | None = None
    ) -> Harness:
        settings = settings or discord_settings(tmp_path / "groomguard.db")
        bot = commands.Bot(
            command_prefix=commands.when_mentioned,
            intents=required_intents(),
            guild_ready_timeout=0.01,
            help_command=None,
        )
        await bot._async_setup_hook()
        bot.http.request = rest.request  # type: ignore[method-assign]
        adapter = DiscordAdapter(settings.discord, bot=bot)
        if detectors is None:
            detectors = [FanOutDetector(FanOutSettings(min_minors=3, saturate_minors=6)), ScriptedLanguageDetector()]
        engine = build_engine(settings, [adapter], detectors=detectors)
        await engine.start()
        await adapter.start(engine)
        harness = Harness(bot, adapter, engine, rest)
        made.append(harness)
        if connect:
            await harness.connect()
            await adapter.wait_ready(5)
            await harness.settle()
        return harness

    yield build
    for harness in made:
        await stop(harness)
