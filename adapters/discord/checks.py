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


def _is_moderator_role(role: discord.Role, moderator_role_ids: set[int]) -> bool:
    perms = role.permissions
    return role.id in moderator_role_ids or perms.administrator or perms.manage_guild


def _is_moderator_member(member: discord.Member, moderator_role_ids: set[int]) -> bool:
    perms = member.guild_permissions
    return perms.administrator or perms.manage_guild or any(r.id in moderator_role_ids for r in member.roles)


def viewer_problems(channel: discord.TextChannel, moderator_role_ids: set[int]) -> list[str]:
    """Roles and members other than moderators and the bot who can view the channel, each named.

    Checked: @everyone, every role (its server permissions with the channel's overwrites) and every
    member overwrite. A "Verified" or "18+" role, or one ordinary member allowed in, would let a
    suspect read the alerts about them.
    """
    guild = channel.guild
    me = guild.me
    fix = "Channel settings → Permissions → deny View Channel to it (allow only your moderator roles)"
    problems = []
    if channel.permissions_for(guild.default_role).view_channel:
        problems.append(
            f"#{channel.name} ({channel.id}) can be read by @everyone; GroomGuard will not post alerts there. "
            "Channel settings → Permissions → @everyone → deny View Channel, then allow your moderator role"
        )
    mine = {r.id for r in me.roles} if me is not None else set()
    for role in guild.roles:
        if role.is_default() or role.id in mine or _is_moderator_role(role, moderator_role_ids):
            continue
        if channel.permissions_for(role).view_channel:
            problems.append(
                f"#{channel.name} ({channel.id}) can be read by the role @{role.name} ({role.id}), which is not a "
                f"moderator role; GroomGuard will not post alerts there. {fix}, or add it to moderator_role_ids"
            )
    for target, overwrite in channel.overwrites.items():
        if not isinstance(target, discord.Member) or (me is not None and target.id == me.id):
            continue
        if overwrite.view_channel and not _is_moderator_member(target, moderator_role_ids):
            problems.append(
                f"#{channel.name} ({channel.id}) has a permission overwrite letting member {target} ({target.id}) "
                f"read it, who is not a moderator; GroomGuard will not post alerts there. {fix}"
            )
    return problems


def mod_channel_problems(
    channel: object, channel_id: int | None, moderator_role_ids: set[int] | None = None, guild_id: int | None = None
) -> list[str]:
    """Why a mod channel cannot be used: missing, in another server, unusable by the bot, or readable by others."""
    if channel_id is None:
        where = f" for server {guild_id}" if guild_id is not None else ""
        return [f"set [discord] mod_channel_id (or mod_channels) to the id of a private moderators' channel{where}"]
    if not isinstance(channel, discord.TextChannel):
        return [
            f"mod channel {channel_id} was not found as a text channel the bot can see: check the id "
            "(Developer Mode → right-click the channel → Copy Channel ID) and that the bot is in that server"
        ]
    if guild_id is not None and channel.guild.id != guild_id:
        return [
            f"mod channel #{channel.name} ({channel.id}) is in server {channel.guild.name} ({channel.guild.id}), "
            f"not in server {guild_id}: cases of one server never go to another's moderators. Set "
            f'[discord.mod_channels] "{guild_id}" = <a private channel id in that server>'
        ]
    problems = []
    mine = channel.permissions_for(channel.guild.me)
    missing = [label for attr, label in MOD_CHANNEL_PERMISSIONS.items() if not getattr(mine, attr)]
    if missing:
        problems.append(
            f"give the bot {', '.join(missing)} in #{channel.name} ({channel.id}): "
            "Channel settings → Permissions → add the bot's role and allow them"
        )
    problems += viewer_problems(channel, moderator_role_ids or set())
    return problems


def enforcement_problems(guild: discord.Guild) -> list[str]:
    """Server permissions missing for timeout, kick and ban (warnings: alerts still work without them)."""
    mine = guild.me.guild_permissions if guild.me is not None else discord.Permissions.none()
    return [
        f"give the bot's role {label} in {guild.name} (Server Settings → Roles) so moderators can use it"
        for attr, label in ENFORCEMENT_PERMISSIONS.items()
        if not getattr(mine, attr)
    ]
