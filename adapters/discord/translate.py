"""Translation of discord.py gateway objects into GroomGuard events; Discord markup is stripped here, once."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import discord
from groomguard.events import (
    AgeBand,
    AgeDeclared,
    AgeSource,
    BaseEvent,
    ContactKind,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    RegionDeclared,
    StandingDeclared,
    StandingKind,
)

PLATFORM = "discord"

#: Mentions beyond this many in one message are not turned into contact edges: a mass-mention
#: is spam, not a relationship, and one message must not fan out into hundreds of events.
MAX_MENTION_EDGES = 20
#: Mentions kept on the message itself (for addressing); Discord allows far more, none of them personal.
MAX_MENTIONS_KEPT = 50

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_CHANNEL_MENTION = re.compile(r"<#(\d{15,21})>")
_EVERYONE = re.compile(r"@(everyone|here)\b")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w{1,32}):\d{15,21}>")
_TIMESTAMP = re.compile(r"<t:-?\d{1,13}(?::[tTdDfFR])?>")
_SLASH_MENTION = re.compile(r"</([\w -]{1,100}):\d{15,21}>")
_ANGLE_LINK = re.compile(r"<(https?://[^\s>]+)>")
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]{0,200})\]\((https?://[^\s)]+)\)")
# Markdown markers only change how text looks; dropping them lets "s**n**ap" read as "snap".
_MARKERS = re.compile(r"(\*\*|__|~~|\|\||```|`|\*|(?<!\w)_(?!_)|(?<!_)_(?!\w))")
_HEADINGS = re.compile(r"^(?:#{1,3}|-#|>>>|>)\s+", re.MULTILINE)
_INVISIBLE = dict.fromkeys(
    [
        *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
        *range(0x200B, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2070),
    ]
)
_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")

#: Explicit requests to move a conversation into DMs or a friend list, said in public.
_DM_REQUEST = re.compile(
    r"\b(?:dm|pm|message|msg|add|friend|text|snap|inbox)\s+me\b|\bslide\s+(?:in(?:to)?\s+)?my\s+dms?\b|\bcheck\s+(?:your|ur)\s+dms?\b",
    re.IGNORECASE,
)


def strip_markup(content: str, attachments: Iterable[discord.Attachment] = (), stickers: int = 0) -> str:
    """Discord markup folded to plain text: mentions dropped, markdown and invisible characters removed.

    Where this sits relative to `groomguard.text.fold_text`: this runs first and only here, and undoes
    what is Discord's own (mention syntax, markdown, custom emoji, timestamps, masked links). It keeps
    case, spelling and leetspeak as written, because the event text is the record. The general fold
    (lower case, lookalikes, leetspeak, spaced letters, contact tokens like ``_handle_``) is *not*
    applied here: the detectors that read words (grooming_language via `groomguard.text.fold`, age_text
    with its own lower-casing) fold the event text themselves, and folding twice would mangle tokens
    (``_handle_`` read as markdown, "s n a p" joined twice). The NFKC and invisible-character pass is
    repeated by `groomguard.text`, which is harmless (both are idempotent) and needed here for the adapter's
    own phrase checks (`is_dm_request`, `self_declared_age`).

    User and role mentions are removed rather than written as ``@user``: `groomguard.text` would lift
    ``@user`` as an off-platform ``_handle_`` token, and the model treats a run of those as contact
    sharing. The mentioned ids are not lost: they go into `recipients` and contact edges. ``@everyone``
    and ``@here`` lose the "@" for the same reason. Attachments become ``[image]``-style markers so
    "send a pic" plus a photo reads as one thing.
    """
    text = unicodedata.normalize("NFKC", content or "")
    text = text.translate(_INVISIBLE)
    text = _USER_MENTION.sub("", text)
    text = _ROLE_MENTION.sub("", text)
    text = _EVERYONE.sub(r"\1", text)
    text = _CHANNEL_MENTION.sub("#channel", text)
    text = _SLASH_MENTION.sub(r"/\1", text)
    text = _CUSTOM_EMOJI.sub(r":\1:", text)
    text = _TIMESTAMP.sub("[time]", text)
    text = _MARKDOWN_LINK.sub(r"\1 \2", text)
    text = _ANGLE_LINK.sub(r"\1", text)
    text = _HEADINGS.sub("", text)
    text = _MARKERS.sub("", text)
    markers = [f"[{_attachment_kind(a)}]" for a in attachments]
    markers += ["[sticker]"] * stickers
    if markers:
        text = f"{text} {' '.join(markers)}"
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def _attachment_kind(attachment: discord.Attachment) -> str:
    kind = (attachment.content_type or "").split("/", 1)[0]
    return kind if kind in {"image", "video", "audio"} else "file"


def is_dm_request(text: str) -> bool:
    """True when stripped text explicitly asks to move to DMs or be added ("dm me", "add me")."""
    return bool(_DM_REQUEST.search(text))


def _at(value: datetime | None) -> datetime:
    return (value or datetime.now(UTC)).astimezone(UTC)


def _base(event_id: str, guild_id: int, at: datetime | None) -> dict[str, object]:
    return {"event_id": event_id, "platform": PLATFORM, "community": str(guild_id), "at": _at(at)}


def _is_person(user: discord.abc.User | None) -> bool:
    return user is not None and not user.bot and not user.system


def conversation_id(channel: discord.abc.Messageable | discord.abc.GuildChannel | discord.Thread) -> str:
    """Threads and channels are conversations of their own; the id is the channel's snowflake."""
    return str(channel.id)  # type: ignore[union-attr]


def message_events(message: discord.Message, community: int | None = None) -> list[BaseEvent]:
    """A guild message (or a DM to the bot, with `community` given) as MessageSent plus its contact edges."""
    if not _is_person(message.author) or message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return []
    guild_id = message.guild.id if message.guild is not None else community
    if guild_id is None:
        return []
    author = message.author.id
    text = strip_markup(message.content, message.attachments, len(message.stickers))
    reply_target: int | None = None
    ref = message.reference
    if ref is not None and isinstance(ref.resolved, discord.Message) and _is_person(ref.resolved.author):
        reply_target = ref.resolved.author.id
    mentioned = [m.id for m in message.mentions if _is_person(m) and m.id != author]
    recipients: dict[int, None] = {}
    if reply_target is not None and reply_target != author:
        recipients[reply_target] = None
    for uid in mentioned:
        recipients[uid] = None
    private = message.guild is None
    if isinstance(message.channel, discord.Thread):
        # Thread members are who the author is talking to; a private thread is a closed room.
        private = message.channel.is_private()
        for member in message.channel.members:
            if member.id != author:
                recipients[member.id] = None
        owner = message.channel.owner_id
        if owner and owner != author:
            recipients[owner] = None
    if isinstance(message.channel, discord.DMChannel):
        recipients[message.channel.me.id] = None
    at = message.created_at
    # Mentions stay apart from recipients so groomguard.addressing can tell "@amy @ben @cas practice at 5"
    # (a broadcast) from a message to one child.
    mention_ids = tuple(str(uid) for uid in dict.fromkeys(mentioned))[:MAX_MENTIONS_KEPT]
    events: list[BaseEvent] = [
        MessageSent(
            **_base(f"msg:{message.id}", guild_id, at),  # type: ignore[arg-type]
            message_id=str(message.id),
            author=str(author),
            conversation=conversation_id(message.channel) if message.guild is not None else f"dm:{author}",
            private=private,
            recipients=tuple(str(r) for r in list(recipients)[:100]),
            text=text,
            reply_to=str(ref.message_id) if ref is not None and ref.message_id else None,
            truncated=len(text) > 8_000,
            mentions=mention_ids,
            reply_to_author=str(reply_target) if reply_target is not None else None,
        )
    ]
    if message.guild is None:
        return events
    targets: list[tuple[int, ContactKind]] = []
    if reply_target is not None and reply_target != author:
        targets.append((reply_target, ContactKind.REPLY))
    for uid in mentioned[:MAX_MENTION_EDGES]:
        if uid != reply_target:
            targets.append((uid, ContactKind.MENTION))
    wants_dm = is_dm_request(text)
    for target, kind in targets:
        events.append(
            ContactRequested(
                **_base(f"contact:{message.id}:{target}:{kind.value}", guild_id, at),  # type: ignore[arg-type]
                source=str(author),
                target=str(target),
                kind=kind,
            )
        )
        if wants_dm:
            events.append(
                ContactRequested(
                    **_base(f"contact:{message.id}:{target}:dm", guild_id, at),  # type: ignore[arg-type]
                    source=str(author),
                    target=str(target),
                    kind=ContactKind.DM,
                    request_id=f"msg:{message.id}",
                )
            )
    return events


def edit_event(payload: discord.RawMessageUpdateEvent) -> MessageEdited | None:
    """MESSAGE_UPDATE with new content as MessageEdited; embed-only refreshes (no edit time) are skipped."""
    message = payload.message
    if payload.guild_id is None or not _is_person(message.author) or message.edited_at is None:
        return None
    return MessageEdited(
        **_base(f"edit:{message.id}:{int(message.edited_at.timestamp() * 1000)}", payload.guild_id, message.edited_at),  # type: ignore[arg-type]
        message_id=str(message.id),
        author=str(message.author.id),
        conversation=str(payload.channel_id),
        text=strip_markup(message.content, message.attachments, len(message.stickers)),
    )


def delete_event(payload: discord.RawMessageDeleteEvent, now: datetime | None = None) -> MessageDeleted | None:
    """MESSAGE_DELETE as MessageDeleted; the author is known only when the message was cached."""
    if payload.guild_id is None:
        return None
    cached = payload.cached_message
    return MessageDeleted(
        **_base(f"del:{payload.message_id}", payload.guild_id, now),  # type: ignore[arg-type]
        message_id=str(payload.message_id),
        conversation=str(payload.channel_id),
        author=str(cached.author.id) if cached is not None else None,
    )


def reaction_events(payload: discord.RawReactionActionEvent, now: datetime | None = None) -> list[BaseEvent]:
    """A reaction on someone else's message: the reaction itself and a view-like signal (Discord has no views)."""
    author = payload.message_author_id
    if payload.guild_id is None or author is None or author == payload.user_id:
        return []
    if payload.member is not None and payload.member.bot:
        return []
    emoji = str(payload.emoji.name or payload.emoji.id or "")[:64]
    base_id = f"{payload.message_id}:{payload.user_id}:{payload.emoji.id or payload.emoji.name}"
    return [
        ReactionAdded(
            **_base(f"react:{base_id}", payload.guild_id, now),  # type: ignore[arg-type]
            account=str(payload.user_id),
            author=str(author),
            message_id=str(payload.message_id),
            emoji=emoji,
        ),
        ContentViewed(
            **_base(f"view:{base_id}", payload.guild_id, now),  # type: ignore[arg-type]
            viewer=str(payload.user_id),
            author=str(author),
            content_id=str(payload.message_id),
        ),
    ]


def join_event(member: discord.Member) -> MemberJoined | None:
    """GUILD_MEMBER_ADD with the account's creation time (from its snowflake) to spot brand-new accounts."""
    if member.bot:
        return None
    joined = member.joined_at or datetime.now(UTC)
    return MemberJoined(
        **_base(f"join:{member.guild.id}:{member.id}:{int(joined.timestamp())}", member.guild.id, joined),  # type: ignore[arg-type]
        account=str(member.id),
        account_created_at=member.created_at,
    )


def leave_event(guild_id: int, user: discord.abc.User, now: datetime | None = None) -> MemberLeft | None:
    """GUILD_MEMBER_REMOVE (leave, kick or ban) as MemberLeft."""
    if user.bot:
        return None
    at = _at(now)
    return MemberLeft(
        **_base(f"leave:{guild_id}:{user.id}:{int(at.timestamp() * 1000)}", guild_id, at),  # type: ignore[arg-type]
        account=str(user.id),
    )


def age_band_of(role: discord.Role, age_roles: Mapping[str, str]) -> str | None:
    """The age band a role maps to (by name or id), or None."""
    return age_roles.get(role.name) or age_roles.get(str(role.id))


def role_events(
    member: discord.Member,
    roles: Iterable[discord.Role],
    age_roles: Mapping[str, str],
    region_roles: Mapping[str, str],
    tag: str,
    now: datetime | None = None,
) -> list[BaseEvent]:
    """Age and region declarations for the mapped roles in `roles` (matched by role name or id).

    `tag` makes the event id: a fixed tag for the start-up sweep (so restarts do not repeat it) and a
    time for a live role change.
    """
    if member.bot:
        return []
    out: list[BaseEvent] = []
    guild = member.guild.id
    for role in roles:
        band = age_band_of(role, age_roles)
        if band is not None:
            out.append(
                AgeDeclared(
                    **_base(f"age:{guild}:{member.id}:{role.id}:{tag}", guild, now),  # type: ignore[arg-type]
                    account=str(member.id),
                    band=AgeBand(band),
                    source=AgeSource.ROLE,
                )
            )
        region = region_roles.get(role.name) or region_roles.get(str(role.id))
        if region is not None:
            out.append(
                RegionDeclared(
                    **_base(f"region:{guild}:{member.id}:{role.id}:{tag}", guild, now),  # type: ignore[arg-type]
                    account=str(member.id),
                    region=region,
                )
            )
    return out


def standing_events(
    member: discord.Member, moderator_role_ids: Iterable[int], tag: str, now: datetime | None = None
) -> list[BaseEvent]:
    """Standings with no personal tie behind them: bots, the server owner, and moderators.

    Moderators are the configured moderator roles or anyone with Manage Server, as for the controls.
    They reach everyone by role, so fan_out never counts them as a mutual contact, nor their public
    replies and mentions as contact of their own. `tag` makes the event id, as in `role_events`.
    """
    guild = member.guild
    found: list[StandingKind] = []
    if member.bot:
        found.append(StandingKind.BOT)
    if guild.owner_id == member.id:
        found.append(StandingKind.CREATOR)
    allowed = set(moderator_role_ids)
    if member.guild_permissions.manage_guild or any(r.id in allowed for r in member.roles):
        found.append(StandingKind.MODERATOR)
    return [
        StandingDeclared(
            **_base(f"standing:{guild.id}:{member.id}:{kind.value}:{tag}", guild.id, now),  # type: ignore[arg-type]
            account=str(member.id),
            standing=kind,
            scope=str(guild.id),
        )
        for kind in found
    ]


def thread_invite_events(thread: discord.Thread, added: Iterable[int], now: datetime | None = None) -> list[BaseEvent]:
    """People added to a private thread: an invitation into a closed room, attributed to the thread's owner.

    Discord does not say who added a member, so the owner is the best attribution it gives; public
    threads are open rooms and produce nothing here.
    """
    owner = thread.owner_id
    if not thread.is_private() or owner is None:
        return []
    return [
        ContactRequested(
            **_base(f"thread-invite:{thread.id}:{uid}", thread.guild.id, now),  # type: ignore[arg-type]
            source=str(owner),
            target=str(uid),
            kind=ContactKind.INVITE,
            request_id=f"thread:{thread.id}",
        )
        for uid in added
        if uid != owner
    ]


_SELF_AGE = re.compile(
    r"^\s*(?:age|my age is|i am|i'm|im)\s+(\d{1,3})\s*(?:years? old|yo|y/o)?\s*[.!]?\s*$", re.IGNORECASE
)


def self_declared_age(text: str) -> int | None:
    """An age stated to the bot in a DM as a whole message ("age 13", "I'm 13"), else None.

    Only an explicit answer to the bot counts; ages mentioned in passing are the detectors' business.
    """
    match = _SELF_AGE.match(text)
    if match is None:
        return None
    age = int(match.group(1))
    return age if 5 <= age <= 120 else None


def self_age_event(message: discord.Message, community: int, age: int) -> AgeDeclared:
    """A DM'd self-declared age as an AgeDeclared for one protected server."""
    return AgeDeclared(
        **_base(f"self-age:{message.id}:{community}", community, message.created_at),  # type: ignore[arg-type]
        account=str(message.author.id),
        band=AgeBand.MINOR if age < 18 else AgeBand.ADULT,
        age=age,
        source=AgeSource.SELF,
    )
