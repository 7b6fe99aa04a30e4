"""Discord adapter: a standalone bot for `groomguard run`, or an extension loaded into an existing discord.py bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord.ext import commands
from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.adapters.discord.cards import COG_NAME
from groomguard.adapters.discord.cardstore import CardStore
from groomguard.adapters.discord.checks import PORTAL, StartupError, required_intents
from groomguard.adapters.discord.cog import DiscordNotReady, GroomGuardCog
from groomguard.config import DiscordSettings, read_secret

if TYPE_CHECKING:
    from groomguard.engine import Engine
    from groomguard.port import EnginePort

__all__ = ["DiscordAdapter", "DiscordNotReady", "GroomGuardCog", "StartupError", "setup", "teardown"]

log = logging.getLogger(__name__)

#: How long `start` waits for the gateway READY and the start-up checks.
READY_TIMEOUT_S = 60.0


def build_bot(settings: DiscordSettings) -> commands.Bot:
    """The standalone bot: only the intents GroomGuard needs, no prefix commands, no mention pings."""
    return commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=required_intents(),
        allowed_mentions=discord.AllowedMentions.none(),
        help_command=None,
    )


class DiscordAdapter:
    """The Adapter for Discord: owns the card table and the cog, and the bot too when it runs standalone."""

    name = "discord"

    def __init__(self, settings: DiscordSettings, bot: commands.Bot | None = None) -> None:
        self.settings = settings
        self.bot = bot
        self.owns_bot = bot is None
        self.cog: GroomGuardCog | None = None
        self.cards: CardStore | None = None
        self.owned_engine: Engine | None = None
        self._runner: asyncio.Task[None] | None = None

    async def start(self, engine: EnginePort) -> None:
        """Open the card table, add the cog; standalone, also log in and wait until the start-up checks pass."""
        # The token first: failing on it must not leave the card table's thread open (a hang at exit).
        token = read_secret(self.settings.token, self.settings.token_file, "discord.token") if self.owns_bot else ""
        if self.bot is None:
            self.bot = build_bot(self.settings)
        self.cards = CardStore(engine.adapter_tables())
        await self.cards.open()
        self.cog = GroomGuardCog(self.bot, self.settings, engine, self.cards)
        try:
            await self.bot.add_cog(self.cog)
        except StartupError:
            await self.cards.close()
            raise
        if not self.owns_bot:
            return
        runner = self._runner = asyncio.create_task(self._run(token), name="groomguard-discord")
        done, _ = await asyncio.wait(
            {runner, asyncio.ensure_future(self.cog.ready)}, timeout=READY_TIMEOUT_S, return_when="FIRST_COMPLETED"
        )
        if runner in done:
            failure = runner.exception() or StartupError(["the Discord connection closed before it was ready"])
            self._runner = None
            await self.stop()
            raise failure
        if not self.cog.ready.done():
            await self.stop()
            raise StartupError(["Discord did not finish connecting within a minute; check the network and the token"])
        if self.cog.ready.exception() is not None:
            error = self.cog.ready.exception()
            await self.stop()
            raise error  # type: ignore[misc]
        for guild_id in self.settings.guild_ids:
            # Guild-scoped sync makes /groomguard appear at once instead of after Discord's global cache.
            guild = discord.Object(guild_id)
            self.bot.tree.copy_global_to(guild=guild)
            await self.bot.tree.sync(guild=guild)

    async def _run(self, token: str) -> None:
        assert self.bot is not None
        try:
            await self.bot.start(token)
        except discord.PrivilegedIntentsRequired:
            raise StartupError(
                [
                    f"Discord refused the privileged intents: switch on SERVER MEMBERS INTENT and "
                    f"MESSAGE CONTENT INTENT in the {PORTAL}, save, then start again"
                ]
            ) from None
        except discord.LoginFailure:
            raise StartupError(
                [
                    "Discord rejected the token: reset it in the Developer Portal (Bot → Reset Token) and set GROOMGUARD_DISCORD__TOKEN"
                ]
            ) from None

    async def wait_ready(self, limit_s: float = READY_TIMEOUT_S) -> None:
        """Wait for the start-up checks on a bot we do not own; raises StartupError naming what to fix."""
        assert self.cog is not None
        async with asyncio.timeout(limit_s):
            await asyncio.shield(self.cog.ready)

    async def stop(self) -> None:
        # An engine we started drains through this adapter, so it stops while the cog can still deliver.
        if self.owned_engine is not None:
            await self.owned_engine.stop()
            self.owned_engine = None
        if self.bot is not None and self.cog is not None and self.bot.get_cog(COG_NAME) is self.cog:
            await self.bot.remove_cog(COG_NAME)
        if self.owns_bot and self.bot is not None:
            await self.bot.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        if self.cards is not None:
            await self.cards.close()
            self.cards = None

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.platform != "discord":
            return
        if self.cog is None:
            raise DiscordNotReady(f"discord adapter not started; {action.action_id} stays in the outbox")
        await self.cog.deliver(action)


async def setup(bot: commands.Bot) -> None:
    """`await bot.load_extension("groomguard.adapters.discord")`: GroomGuard inside an existing bot.

    Settings come from the TOML file named by GROOMGUARD_CONFIG (default ./groomguard.toml) plus
    GROOMGUARD_* environment variables; the bot's own token and intents are used.
    """
    from groomguard.config import load_settings
    from groomguard.engine import Engine
    from groomguard.store import open_store

    named = os.environ.get("GROOMGUARD_CONFIG")
    path = Path(named or "groomguard.toml")
    exists = await asyncio.to_thread(path.is_file)
    # A GROOMGUARD_CONFIG that names no file is an error (load_settings says so), never a silent default.
    settings = await asyncio.to_thread(load_settings, path if exists or named else None)
    if "enabled" in settings.discord.model_fields_set and not settings.discord.enabled:
        log.warning("GroomGuard not started in this bot: [discord] enabled = false in %s", path)
        return
    adapter = DiscordAdapter(settings.discord, bot=bot)
    engine = Engine(settings, [adapter], store=open_store(settings.store))
    await engine.start()
    try:
        await adapter.start(engine)
    except BaseException:
        await engine.stop()
        raise
    adapter.owned_engine = engine
    bot.groomguard_adapter = adapter  # type: ignore[attr-defined]


async def teardown(bot: commands.Bot) -> None:
    """Called by `unload_extension`: stop the adapter and the engine it started."""
    adapter: DiscordAdapter | None = getattr(bot, "groomguard_adapter", None)
    if adapter is not None:
        await adapter.stop()
        del bot.groomguard_adapter  # type: ignore[attr-defined]
