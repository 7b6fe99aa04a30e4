"""Start-up checks (intents, portal switches, a private mod channel), loading as an extension, and /groomguard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import pytest
from discord.ext import commands
from dpy_harness import BYSTANDER, GUILD, KIDS, MODERATOR, Harness, frame
from groomguard.adapters.discord import DiscordAdapter, StartupError
from groomguard.adapters.discord.checks import required_intents
from groomguard.app.runtime import build_engine

EPHEMERAL = 64


async def test_missing_portal_intents_stop_start_up_with_what_to_switch_on(make_harness: Any) -> None:
    h: Harness = await make_harness(connect=False)
    ready = frame("ready.json")
    ready["d"]["application"]["flags"] = 0  # neither privileged intent switched on in the portal
    await h.connect(ready=ready)
    with pytest.raises(StartupError) as caught:
        await h.adapter.wait_ready(5)
    text = str(caught.value)
    assert "switch on SERVER MEMBERS INTENT" in text and "switch on MESSAGE CONTENT INTENT" in text
    assert "Developer Portal" in text
    # Nothing is delivered while the checks fail: actions stay in the outbox.
    with pytest.raises(Exception, match="not ready"):
        await h.adapter.cog.deliver(  # type: ignore[union-attr]
            (await h.engine.store.pending_actions() or [_alert()])[0]
        )


def _alert() -> Any:
    from datetime import UTC, datetime

    from groomguard.actions import ModAlert

    return ModAlert(
        action_id="a",
        platform="discord",
        community=str(GUILD),
        case_id=1,
        suspect="1",
        risk=0.9,
        reasons=(),
        at=datetime.now(UTC),
    )


async def test_public_mod_channel_is_refused(make_harness: Any) -> None:
    h: Harness = await make_harness(connect=False)
    guild = frame("guild_create.json")
    mod = next(c for c in guild["d"]["channels"] if c["name"] == "groomguard-alerts")
    mod["permission_overwrites"] = []  # @everyone can read it
    await h.connect(guild=guild)
    with pytest.raises(StartupError, match="can be read by @everyone"):
        await h.adapter.wait_ready(5)


async def test_extension_on_a_bot_without_the_intents_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "groomguard.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "gg.db"}"\n[discord]\nmod_channel_id = 1\n', encoding="utf-8")
    monkeypatch.setenv("GROOMGUARD_CONFIG", str(config))
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    await bot._async_setup_hook()
    with pytest.raises(commands.ExtensionFailed) as caught:
        await bot.load_extension("groomguard.adapters.discord")
    original = caught.value.original
    assert isinstance(original, StartupError)
    assert "intents.members = True" in str(original) and "intents.message_content = True" in str(original)
    assert "SERVER MEMBERS INTENT" in str(original)
    assert bot.get_cog("GroomGuard") is None
    await bot.close()


async def test_extension_loads_and_unloads_in_an_existing_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "groomguard.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "gg.db"}"\n[discord]\nmod_channel_id = 1\n', encoding="utf-8")
    monkeypatch.setenv("GROOMGUARD_CONFIG", str(config))
    bot = commands.Bot(command_prefix="!", intents=required_intents())
    await bot._async_setup_hook()
    await bot.load_extension("groomguard.adapters.discord")
    assert bot.get_cog("GroomGuard") is not None
    assert [c.name for c in bot.tree.get_commands()] == ["groomguard"]
    assert {c.name for c in bot.tree.get_commands()[0].commands} == {"cases", "case", "age", "forget", "status"}  # type: ignore[union-attr]
    await bot.unload_extension("groomguard.adapters.discord")
    assert bot.get_cog("GroomGuard") is None
    await bot.close()


async def test_standalone_start_turns_privileged_intents_refusal_into_instructions(
    make_harness: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def refused(self: commands.Bot, token: str, *, reconnect: bool = True) -> None:
        raise discord.PrivilegedIntentsRequired(None)

    monkeypatch.setattr(commands.Bot, "start", refused)
    h: Harness = await make_harness(connect=False)
    settings = h.engine.settings.model_copy(deep=True)
    settings.discord.token = "test-token"
    adapter = DiscordAdapter(settings.discord)
    engine = build_engine(settings, [adapter], detectors=[])
    await engine.start()
    try:
        with pytest.raises(StartupError, match="switch on SERVER MEMBERS INTENT and MESSAGE CONTENT INTENT"):
            await adapter.start(engine)
    finally:
        await engine.stop()


async def test_slash_cases_for_moderators_and_refusal_for_others(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await h.push("message_create_reply.json", "message_create_mentions.json")
    await h.settle()
    h.slash("interaction_slash_cases.json")
    await h.settle()
    listed = h.rest.callbacks()[-1]
    assert listed["data"]["flags"] == EPHEMERAL and listed["data"]["embeds"][0]["title"] == "Open cases (1)"

    h.slash("interaction_slash_age.json", user=BYSTANDER)
    await h.settle()
    refused = h.rest.callbacks()[-1]
    assert refused["data"]["flags"] == EPHEMERAL and "Only GroomGuard moderators" in refused["data"]["content"]
    async with h.engine.store.db.execute("SELECT actor, action, detail FROM audit ORDER BY id DESC LIMIT 1") as cur:  # type: ignore[attr-defined]
        row = await cur.fetchone()
    assert row["actor"] == str(BYSTANDER) and row["action"] == "refused" and "command:age" in row["detail"]


async def test_slash_age_records_a_moderator_declaration(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.slash("interaction_slash_age.json", user=MODERATOR)
    await h.settle()
    reply = h.rest.callbacks()[-1]
    assert reply["data"]["flags"] == EPHEMERAL and "minor" in reply["data"]["content"]
    account = await h.engine.state.account(str(GUILD), str(KIDS[2]))
    assert account.band == "minor" and account.band_source == "moderator"
