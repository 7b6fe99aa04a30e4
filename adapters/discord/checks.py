"""Start-up checks: the intents and permissions GroomGuard needs, each problem phrased as what to switch on and where."""

from __future__ import annotations

from typing import Any

import discord

PORTAL = "Discord Developer Portal → Applications → your bot → Bot → Privileged Gateway Intents"

#: Permissions the bot needs in the mod channel to post and edit alert cards.
MOD_CHANNEL_PERMISSIONS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "read_message_history": "Read Message History",
}
#: Server-wide permissions the moderator actions need; missing ones disable that action only.
ENFORCEMENT_PERMISSIONS = {
    "moderate_members": "Timeout Members",
    "kick_members": "Kick Members",
    "ban_members": "Ban Members",
}


class StartupError(RuntimeError):
    """GroomGuard cannot run on this bot yet; `problems` says exactly what to switch on and where."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("GroomGuard cannot start on Discord:\n" + "\n".join(f"  - {p}" for p in problems))


def required_intents() -> discord.Intents:
    """The gateway intents GroomGuard asks for: members and message content are privileged."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.members = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.guild_reactions = True
    intents.message_content = True
    return intents


def intent_problems(intents: discord.Intents) -> list[str]:
    """What the bot's code must switch on (for a bot built elsewhere and loading us as an extension)."""
    problems = []
    if not intents.members:
        problems.append(
            "the bot is not asking for the Server Members intent: create it with intents.members = True "
            f"and switch on SERVER MEMBERS INTENT in the {PORTAL} (needed for joins, leaves and age roles)"
        )
    if not intents.message_content:
        problems.append(
            "the bot is not asking for the Message Content intent: create it with intents.message_content = True "
            f"and switch on MESSAGE CONTENT INTENT in the {PORTAL} (needed to read what adults say to children)"
        )
    for name, why in (
        ("guilds", "servers and channels"),
        ("guild_messages", "server messages"),
        ("guild_reactions", "reactions"),
        ("dm_messages", "reports and ages sent to the bot by DM"),
    ):
        if not getattr(intents, name):
            problems.append(f"the bot is not asking for the {name} intent: set intents.{name} = True ({why})")
    return problems


def portal_problems(flags: Any) -> list[str]:
    """What the developer portal must switch on, read from the application flags Discord sends in READY."""
    if flags is None:
        return []
    problems = []
    if not (flags.gateway_guild_members or flags.gateway_guild_members_limited):
        problems.append(f"switch on SERVER MEMBERS INTENT in the {PORTAL}")
    if not (flags.gateway_message_content or flags.gateway_message_content_limited):
        problems.append(f"switch on MESSAGE CONTENT INTENT in the {PORTAL}")
    return problems


def mod_channel_problems(channel: object, channel_id: int | None) -> list[str]:
    """Why the configured mod channel cannot be used: missing, unreadable by the bot, or readable by @everyone."""
    if channel_id is None:
        return ["set [discord] mod_channel_id to the id of a private moderators' channel"]
    if not isinstance(channel, discord.TextChannel):
        return [
            f"mod channel {channel_id} was not found as a text channel the bot can see: check the id "
            "(Developer Mode → right-click the channel → Copy Channel ID) and that the bot is in that server"
        ]
    problems = []
    mine = channel.permissions_for(channel.guild.me)
    missing = [label for attr, label in MOD_CHANNEL_PERMISSIONS.items() if not getattr(mine, attr)]
    if missing:
        problems.append(
            f"give the bot {', '.join(missing)} in #{channel.name} ({channel.id}): "
            "Channel settings → Permissions → add the bot's role and allow them"
        )
    if channel.permissions_for(channel.guild.default_role).view_channel:
        problems.append(
            f"#{channel.name} ({channel.id}) can be read by @everyone; GroomGuard will not post alerts there. "
            "Channel settings → Permissions → @everyone → deny View Channel, then allow your moderator role"
        )
    return problems


def enforcement_problems(guild: discord.Guild) -> list[str]:
    """Server permissions missing for timeout, kick and ban (warnings: alerts still work without them)."""
    mine = guild.me.guild_permissions if guild.me is not None else discord.Permissions.none()
    return [
        f"give the bot's role {label} in {guild.name} (Server Settings → Roles) so moderators can use it"
        for attr, label in ENFORCEMENT_PERMISSIONS.items()
        if not getattr(mine, attr)
    ]
