"""The mod channel must be readable by moderators and the bot only; one per server; /groomguard for moderators (issue 12)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.ext import commands
from dpy_harness import BYSTANDER, GUILD, MOD_CHANNEL, Harness, discord_settings, frame
from groomguard.actions import ModAlert
from groomguard.adapters.discord import StartupError
from groomguard.adapters.discord.checks import required_intents
from groomguard.adapters.discord.cog import ModChannelUnusable
from groomguard.config import ConfigError

VIEW = 1024
VERIFIED = 1100000000000000107


def _guild_with(overwrites: list[dict[str, Any]], roles: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    guild = frame("guild_create.json")
    guild["d"]["roles"].extend(roles)
    mod = next(c for c in guild["d"]["channels"] if c["name"] == "groomguard-alerts")
    mod["permission_overwrites"].extend(overwrites)
    return guild


async def test_a_role_that_is_not_a_moderator_role_and_can_view_is_named(make_harness: Any) -> None:
    h: Harness = await make_harness(connect=False)
    verified = {"id": str(VERIFIED), "name": "Verified", "permissions": "0", "position": 1, "color": 0,
                "hoist": False, "managed": False, "mentionable": False, "flags": 0}  # fmt: skip
    await h.connect(guild=_guild_with([{"id": str(VERIFIED), "type": 0, "allow": str(VIEW), "deny": "0"}], [verified]))
    with pytest.raises(StartupError) as caught:
        await h.adapter.wait_ready(5)
    assert f"can be read by the role @Verified ({VERIFIED})" in str(caught.value)


async def test_an_adult_role_that_can_view_is_named(make_harness: Any) -> None:
    h: Harness = await make_harness(connect=False)
    adults = 1100000000000000104  # "18+": every adult, suspects included
    await h.connect(guild=_guild_with([{"id": str(adults), "type": 0, "allow": str(VIEW), "deny": "0"}]))
    with pytest.raises(StartupError, match=r"role @18\+"):
        await h.adapter.wait_ready(5)


async def test_one_ordinary_member_allowed_in_is_named(make_harness: Any) -> None:
    h: Harness = await make_harness(connect=False)
    await h.connect(guild=_guild_with([{"id": str(BYSTANDER), "type": 1, "allow": str(VIEW), "deny": "0"}]))
    with pytest.raises(StartupError) as caught:
        await h.adapter.wait_ready(5)
    assert f"letting member bystander_billie ({BYSTANDER}) read it" in str(caught.value)


async def test_the_recorded_private_channel_passes(make_harness: Any) -> None:
    h: Harness = await make_harness()
    assert h.adapter.cog is not None and h.adapter.cog.problems == []


async def test_a_case_of_another_server_is_never_posted_in_this_servers_channel(make_harness: Any) -> None:
    h: Harness = await make_harness()
    other = GUILD + 999
    alert = ModAlert(
        action_id="other-1", platform="discord", community=str(other), case_id=7, suspect="1", risk=0.9,
        reasons=(), at=datetime.now(UTC),
    )  # fmt: skip
    with pytest.raises(ModChannelUnusable, match=f"not in server {other}"):
        await h.adapter.cog._show_alert(alert)  # type: ignore[union-attr]
    assert h.card_calls() == []


async def test_per_server_mod_channels_are_used(make_harness: Any, tmp_path: Path) -> None:
    settings = discord_settings(
        tmp_path / "per-guild.db", discord__mod_channel_id=None, discord__mod_channels={str(GUILD): MOD_CHANNEL}
    )
    h: Harness = await make_harness(settings=settings)
    assert h.adapter.cog is not None and h.adapter.cog.problems == []
    assert h.adapter.cog._checked_mod_channel(GUILD).id == MOD_CHANNEL  # type: ignore[union-attr]
    assert h.adapter.cog._checked_mod_channel(GUILD + 1, raise_=False) is None


def test_mod_channels_keys_must_be_server_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server ids"):
        from groomguard.config import load_settings

        config = tmp_path / "g.toml"
        config.write_text('[discord.mod_channels]\n"general" = 5\n')
        load_settings(config)


async def test_slash_commands_default_to_moderators(make_harness: Any) -> None:
    h: Harness = await make_harness()
    [group] = h.bot.tree.get_commands()
    payload = group.to_dict(h.bot.tree)
    assert int(payload["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
    assert payload["contexts"] == [0] or payload.get("dm_permission") is False


# -- loading as an extension --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def keep_adapter_modules() -> Iterator[None]:
    """discord.py drops an extension's modules from sys.modules when loading fails; put them back, so
    later tests keep comparing against the same StartupError class they imported."""
    saved = {
        k: v
        for k, v in sys.modules.items()
        if k == "groomguard.adapters.discord" or k.startswith("groomguard.adapters.discord.")
    }
    yield
    sys.modules.update(saved)


async def test_extension_refuses_a_config_path_that_names_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROOMGUARD_CONFIG", str(tmp_path / "typo.toml"))
    bot = commands.Bot(command_prefix="!", intents=required_intents())
    await bot._async_setup_hook()
    with pytest.raises(commands.ExtensionFailed) as caught:
        await bot.load_extension("groomguard.adapters.discord")
    assert isinstance(caught.value.original, ConfigError) and "file not found" in str(caught.value.original)
    await bot.close()


async def test_extension_honours_enabled_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "groomguard.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "gg.db"}"\n[discord]\nenabled = false\nmod_channel_id = 1\n')
    monkeypatch.setenv("GROOMGUARD_CONFIG", str(config))
    bot = commands.Bot(command_prefix="!", intents=required_intents())
    await bot._async_setup_hook()
    await bot.load_extension("groomguard.adapters.discord")
    assert bot.get_cog("GroomGuard") is None and not hasattr(bot, "groomguard_adapter")
    await bot.close()
