"""Raw Matrix `/sync` payloads → GroomGuard events, plus the room state needed to read them.

Pure on purpose: no network, no clock except what is passed in, so it is tested against recorded
sync payloads. The adapter does the I/O (sync, joins, sends) and hands each payload here.
Works on the raw JSON, not nio's parsed objects, because nio drops fields we need (receipt
threads, `unsigned.prev_content` on some paths) and because a malformed event must become a
counted skip here rather than an exception or a silently empty object somewhere else.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from groomguard.events import (
    AgeBand,
    AgeDeclared,
    AgeSource,
    Answer,
    BaseEvent,
    ContactAnswered,
    ContactKind,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    StandingDeclared,
    StandingKind,
)
from pydantic import ValidationError

log = logging.getLogger(__name__)

PLATFORM = "matrix"
COMMAND_PREFIX = "!gg"
#: Message types whose `body` is something a person wrote (others are files, locations...).
TEXT_MSGTYPES = frozenset({"m.text", "m.notice", "m.emote"})
_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n?")
#: Recent messages remembered per room, to turn a read-receipt position into the messages it covers.
MESSAGES_PER_ROOM = 2_000
#: What a room v12+ creator's power compares as (they have no number; they outrank everyone).
CREATOR_POWER = 2**53
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
#: A user pill in formatted bodies, for clients that do not send `m.mentions`.
_PILL = re.compile(r"""href=["']https://matrix\.to/#/(@[^"'?/]+:[^"'?/]+)["'?]""")
#: Mentions beyond this many in one message are cut: a mass mention is a broadcast, not an address.
MAX_MENTIONS = 50


def request_id(room_id: str, invitee: str) -> str:
    """Same id as the Synapse module's, so the bot's and the module's reports dedupe."""
    return f"{room_id}|{invitee}"


def strip_markup(body: str, is_reply: bool) -> str:
    """Matrix body markup stripped, once, before it becomes event text: the reply fallback quote removed, odd
    spaces and zero-width joiners gone. The general fold is the core's (`groomguard.text.fold`)."""
    if is_reply:
        body = _REPLY_FALLBACK.sub("", body, count=1)
    body = body.replace("\u200c", "").replace("\u200d", "").replace("\ufeff", "")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in body.splitlines()).strip()


def at_from_ms(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return fallback
    return fallback


@dataclass
class RoomInfo:
    """What we know of one room: memberships, DM flag, join rule and power levels."""

    room_id: str
    members: dict[str, str] = field(default_factory=dict)
    invited_by: dict[str, tuple[str, str]] = field(default_factory=dict)
    direct: bool = False
    join_rule: str = ""
    #: The spec's defaults when the state event is absent: history "shared", guests "forbidden".
    history_visibility: str = "shared"
    guest_access: str = "forbidden"
    power: dict[str, Any] = field(default_factory=dict)
    #: Room v12+ creators outrank every power level and are not listed in `users`.
    creators: frozenset[str] = frozenset()
    #: Who created the room (any room version), from `m.room.create`.
    created_by: str = ""

    def joined(self) -> set[str]:
        return {u for u, m in self.members.items() if m == "join"}

    def present(self) -> set[str]:
        """Joined or invited: everyone who can read (or is about to read) the room."""
        return {u for u, m in self.members.items() if m in ("join", "invite")}

    def power_of(self, user: str) -> int:
        if user in self.creators:
            return CREATOR_POWER
        users = self.power.get("users")
        if isinstance(users, dict) and isinstance(users.get(user), int):
            return int(users[user])
        default = self.power.get("users_default", 0)
        if not self.power:
            # No power_levels event: the room creator has 100, everyone else 0 (spec).
            return 0
        return int(default) if isinstance(default, int) else 0

    def level(self, name: str, default: int) -> int:
        value = self.power.get(name, default)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else default

    def apply_state(self, event: dict[str, Any]) -> None:
        etype, content = event.get("type"), event.get("content")
        if not isinstance(content, dict):
            return
        if etype == "m.room.member":
            target, membership = event.get("state_key"), content.get("membership")
            if isinstance(target, str) and isinstance(membership, str):
                self.members[target] = membership
                if membership == "invite":
                    self.invited_by[target] = (str(event.get("sender")), str(event.get("event_id")))
                    if content.get("is_direct") is True:
                        self.direct = True
                else:
                    self.invited_by.pop(target, None)
        elif etype == "m.room.create":
            if isinstance(event.get("sender"), str):
                self.created_by = event["sender"]
            version = content.get("room_version", "1")
            if isinstance(version, str) and version.isdigit() and int(version) >= 12:
                extra = content.get("additional_creators")
                extra = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
                self.creators = frozenset([str(event.get("sender")), *extra])
        elif etype == "m.room.power_levels":
            self.power = content
        elif etype == "m.room.join_rules" and isinstance(content.get("join_rule"), str):
            self.join_rule = content["join_rule"]
        elif etype == "m.room.history_visibility" and isinstance(content.get("history_visibility"), str):
            self.history_visibility = content["history_visibility"]
        elif etype == "m.room.guest_access" and isinstance(content.get("guest_access"), str):
            self.guest_access = content["guest_access"]


@dataclass(frozen=True)
class Interaction:
    """Something addressed to the bot rather than a community event: a mod-room reaction or command."""

    kind: str  # "reaction" | "command" | "reply" (a reply to a message in the mod room)
    room_id: str
    sender: str
    event_id: str
    at: datetime
    text: str = ""  # the command text, or the reaction key
    relates_to: str = ""  # the event a reaction points at, or the message a reply answers
    in_dm: bool = False  # sent in a 1:1 room with the bot


def strip_reply_fallback(body: str) -> str:
    """A reply's own text: the quoted fallback ("> <@mod:hs> ..." lines, then a blank line) removed."""
    lines = body.splitlines()
    if lines and lines[0].startswith(">"):
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        if lines and not lines[0].strip():
            lines.pop(0)
    return "\n".join(lines).strip()


@dataclass
class SyncBatch:
    """What one sync payload means: events to ingest plus things for the adapter to act on."""

    next_batch: str | None = None
    events: list[BaseEvent] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    invited_to: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    mod_room_changed: bool = False


@dataclass(frozen=True)
class TranslatorConfig:
    community: str
    bot_user: str
    mod_room: str = ""
    minor_rooms: frozenset[str] = frozenset()
    adult_rooms: frozenset[str] = frozenset()
    #: The community's own rooms and spaces (protected, minor and adult rooms): their creators and
    #: moderators invite everyone, so they are declared with a standing (see StandingDeclared).
    layout_rooms: frozenset[str] = frozenset()
    moderator_power_level: int = 50


class Translator:
    """Keeps room state across syncs and turns each payload into a `SyncBatch`; never raises on input."""

    def __init__(self, config: TranslatorConfig, remembered_events: int = 100_000) -> None:
        self.config = config
        self.rooms: dict[str, RoomInfo] = {}
        self.skipped: Counter[str] = Counter()
        self._authors: OrderedDict[str, str] = OrderedDict()
        self._remembered = remembered_events
        #: Recent messages per room in timeline order, and each reader's last receipt position.
        self._messages: dict[str, deque[tuple[str, str]]] = {}
        self._read_at: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._fresh: set[str] = set()
        self._declared: set[tuple[str, str]] = set()

    # -- room questions the adapter asks -------------------------------------------------

    def room(self, room_id: str) -> RoomInfo:
        info = self.rooms.get(room_id)
        if info is None:
            info = self.rooms[room_id] = RoomInfo(room_id)
        return info

    def is_bot_dm(self, room_id: str) -> bool:
        """A room where the only other person is one user: their private line to the bot."""
        info = self.rooms.get(room_id)
        return info is not None and len(info.present() - {self.config.bot_user}) == 1

    def watched(self, room_id: str) -> bool:
        """Rooms whose events become community events: every joined room but the mod room and bot DMs."""
        return room_id != self.config.mod_room and not self.is_bot_dm(room_id)

    def author_of(self, event_id: str) -> str | None:
        return self._authors.get(event_id)

    def remember(self, event_id: str, sender: str) -> None:
        """Bounded event → sender map so receipts and reactions can name the author they point at."""
        self._authors[event_id] = sender
        self._authors.move_to_end(event_id)
        while len(self._authors) > self._remembered:
            self._authors.popitem(last=False)

    def forget(self, account: str) -> None:
        for event_id in [e for e, s in self._authors.items() if s == account]:
            del self._authors[event_id]
        for room_id, messages in self._messages.items():
            self._messages[room_id] = deque(((e, a) for e, a in messages if a != account), maxlen=MESSAGES_PER_ROOM)
        for key in [k for k in self._read_at if k[1] == account]:
            del self._read_at[key]

    def unknown_receipt_targets(self, payload: dict[str, Any]) -> list[tuple[str, str]]:
        """Receipts in `payload` pointing at events whose author we do not know (to look up first)."""
        seen = set()
        for _room_id, room in _rooms(payload, "join"):
            seen.update(e.get("event_id") for e in _events(room, "timeline") if isinstance(e, dict))
        out = []
        for room_id, room in _rooms(payload, "join"):
            for receipt in _events(room, "ephemeral"):
                if not isinstance(receipt, dict) or receipt.get("type") != "m.receipt":
                    continue
                content = receipt.get("content")
                for event_id in content if isinstance(content, dict) else ():
                    if event_id not in seen and event_id not in self._authors:
                        out.append((room_id, event_id))
        return out

    # -- translation ----------------------------------------------------------------------

    def translate(self, payload: Any, now: datetime | None = None) -> SyncBatch:
        """Read one `/sync` response body; bad parts are counted in `skipped`, never raised."""
        now = now or datetime.now(UTC)
        batch = SyncBatch()
        self._fresh = set()
        if not isinstance(payload, dict):
            self.skipped["malformed_sync"] += 1
            return batch
        token = payload.get("next_batch")
        batch.next_batch = token if isinstance(token, str) else None
        for room_id, room in _rooms(payload, "join"):
            self._room(room_id, room, now, batch)
        for room_id, room in _rooms(payload, "leave"):
            self._room(room_id, room, now, batch)
            if self.room(room_id).members.get(self.config.bot_user) != "join":
                batch.left.append(room_id)
                self.rooms.pop(room_id, None)
        for room_id, _room in _rooms(payload, "invite"):
            batch.invited_to.append(room_id)
        return batch

    def _room(self, room_id: str, room: dict[str, Any], now: datetime, batch: SyncBatch) -> None:
        info = self.room(room_id)
        for block in ("state", "timeline"):
            for raw in _events(room, block):
                try:
                    self._event(room_id, info, raw, now, batch, timeline=block == "timeline")
                except (ValidationError, ValueError, TypeError, KeyError, AttributeError) as error:
                    self.skipped["malformed"] += 1
                    log.warning(
                        "skipped malformed matrix event %s in %s: %s",
                        raw.get("event_id") if isinstance(raw, dict) else "?",
                        room_id,
                        type(error).__name__,
                    )
        self._standings(room_id, info, now, batch)
        for raw in _events(room, "ephemeral"):
            try:
                self._ephemeral(room_id, info, raw, now, batch)
            except (ValidationError, ValueError, TypeError, KeyError, AttributeError):
                self.skipped["malformed"] += 1
                log.warning("skipped malformed ephemeral event in %s", room_id)

    def _standings(self, room_id: str, info: RoomInfo, now: datetime, batch: SyncBatch) -> None:
        """Declare the creators of the community's rooms and the moderators of those rooms and the mod room.

        Once per account and standing: the event id is stable, so restarts and later syncs repeat nothing.
        Only the configured rooms count; a creator of any other room (a groomer's own group chat) gets no
        standing, because a standing exempts room invitations from fan_out.
        """
        layout = room_id in self.config.layout_rooms
        if not layout and room_id != self.config.mod_room:
            return
        found: list[tuple[str, StandingKind]] = []
        if layout:
            found += [(u, StandingKind.CREATOR) for u in sorted({info.created_by, *info.creators} - {""})]
        users = info.power.get("users")
        listed = {u for u in users if isinstance(u, str)} if isinstance(users, dict) else set()
        level = self.config.moderator_power_level
        # Room v12+ creators are not in `users` but outrank everyone (power_of knows).
        found += [
            (u, StandingKind.MODERATOR)
            for u in sorted(listed | info.creators | info.joined())
            if info.power_of(u) >= level
        ]
        for user, standing in found:
            if user == self.config.bot_user or (user, standing.value) in self._declared:
                continue
            self._declared.add((user, standing.value))
            batch.events.append(
                StandingDeclared(
                    event_id=f"standing:{user}:{standing.value}",
                    platform=PLATFORM,
                    community=self.config.community,
                    at=now,
                    account=user,
                    standing=standing,
                    scope=room_id,
                )
            )

    def _event(self, room_id: str, info: RoomInfo, raw: Any, now: datetime, batch: SyncBatch, timeline: bool) -> None:
        if not isinstance(raw, dict):
            self.skipped["malformed"] += 1
            return
        etype, sender, event_id = raw.get("type"), raw.get("sender"), raw.get("event_id")
        if not (isinstance(etype, str) and isinstance(sender, str) and isinstance(event_id, str)):
            self.skipped["malformed"] += 1
            return
        content = raw.get("content")
        if not isinstance(content, dict):
            self.skipped["malformed"] += 1
            return
        at = at_from_ms(raw.get("origin_server_ts"), now)
        if etype != "m.room.member":
            if "state_key" in raw:
                info.apply_state(raw)
                if room_id == self.config.mod_room:
                    batch.mod_room_changed = True
                self.skipped["ignored_state"] += 1
                return
            self.remember(event_id, sender)
        if etype == "m.room.member":
            self._member(room_id, info, raw, content, at, batch)
            return
        if sender == self.config.bot_user:
            return
        if room_id == self.config.mod_room or self.is_bot_dm(room_id):
            self._interaction(room_id, raw, etype, sender, event_id, content, at, batch)
            return
        self._content(room_id, info, etype, sender, event_id, raw, content, at, batch)

    def _member(
        self, room_id: str, info: RoomInfo, raw: dict[str, Any], content: dict[str, Any], at: datetime, batch: SyncBatch
    ) -> None:
        sender, event_id = raw["sender"], raw["event_id"]
        target, membership = raw.get("state_key"), content.get("membership")
        if not isinstance(target, str) or not isinstance(membership, str):
            self.skipped["malformed"] += 1
            return
        unsigned = raw.get("unsigned") if isinstance(raw.get("unsigned"), dict) else {}
        prev_content = unsigned.get("prev_content")
        prev = prev_content.get("membership") if isinstance(prev_content, dict) else info.members.get(target)
        inviter = unsigned.get("prev_sender") if prev == "invite" else None
        if prev == "invite" and not isinstance(inviter, str):
            inviter = info.invited_by.get(target, (None, None))[0]
        was_watched = self.watched(room_id)
        info.apply_state(raw)
        if room_id == self.config.mod_room:
            batch.mod_room_changed = True
            return
        bot = self.config.bot_user
        if target == bot or (not was_watched and not self.watched(room_id)):
            return
        c = self.config.community
        base = {"platform": PLATFORM, "community": c, "at": at}
        rid = request_id(room_id, target)
        if membership == "invite":
            if sender != target and sender != bot:
                kind = ContactKind.DM if content.get("is_direct") is True else ContactKind.INVITE
                batch.events.append(
                    ContactRequested(**base, event_id=event_id, source=sender, target=target, kind=kind, request_id=rid)
                )
            return
        if membership == "join":
            if prev == "join":
                return  # a profile change, not a join
            if prev == "invite" and inviter and inviter != target and inviter != bot:
                batch.events.append(
                    ContactAnswered(
                        **base,
                        event_id=event_id,  # the Synapse module reports the same answer with this id
                        source=inviter,
                        target=target,
                        answer=Answer.ACCEPTED,
                        request_id=rid,
                    )
                )
            batch.events.append(MemberJoined(**base, event_id=f"{event_id}#joined", account=target))
            # The room's creator and moderators are in it to run it, not because of their age.
            runs_it = target in (info.created_by, *info.creators) or (
                bool(info.power) and info.power_of(target) >= self.config.moderator_power_level
            )
            band = (
                AgeBand.MINOR
                if room_id in self.config.minor_rooms
                else AgeBand.ADULT
                if room_id in self.config.adult_rooms
                else None
            )
            if band is not None and not runs_it:
                batch.events.append(
                    AgeDeclared(**base, event_id=f"{event_id}#age", account=target, band=band, source=AgeSource.ROLE)
                )
            return
        if membership in ("leave", "ban"):
            if prev == "invite" and inviter and inviter != bot:
                # Left by the invitee: a rejection. Withdrawn by the inviter, or a kick/ban of the invitee:
                # no answer from the child, reported so the invite neither expires nor counts as refused.
                batch.events.append(
                    ContactAnswered(
                        **base,
                        event_id=event_id,
                        source=inviter,
                        target=target,
                        answer=Answer.REJECTED if sender == target else Answer.WITHDRAWN,
                        request_id=rid,
                    )
                )
            elif prev == "join":
                batch.events.append(MemberLeft(**base, event_id=event_id, account=target))

    def _content(
        self,
        room_id: str,
        info: RoomInfo,
        etype: str,
        sender: str,
        event_id: str,
        raw: dict[str, Any],
        content: dict[str, Any],
        at: datetime,
        batch: SyncBatch,
    ) -> None:
        base = {"event_id": event_id, "platform": PLATFORM, "community": self.config.community, "at": at}
        relates = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else {}
        if etype == "m.room.message":
            body = content.get("body")
            msgtype = content.get("msgtype")
            if not isinstance(body, str) or not isinstance(msgtype, str):
                self.skipped["malformed"] += 1
                return
            if relates.get("rel_type") == "m.replace" and isinstance(relates.get("event_id"), str):
                new = content.get("m.new_content")
                new_body = new.get("body") if isinstance(new, dict) and isinstance(new.get("body"), str) else body
                batch.events.append(
                    MessageEdited(
                        **base,
                        message_id=relates["event_id"],
                        author=sender,
                        conversation=room_id,
                        text=strip_markup(new_body, False),
                    )
                )
                return
            reply = relates.get("m.in_reply_to")
            reply_to = reply.get("event_id") if isinstance(reply, dict) else None
            text = strip_markup(body, reply_to is not None) if msgtype in TEXT_MSGTYPES else ""
            others = info.joined() - {self.config.bot_user}
            private = info.direct or len(others) <= 2
            mentions = self._mentions(content, sender)
            self._messages.setdefault(room_id, deque(maxlen=MESSAGES_PER_ROOM)).append((event_id, sender))
            self._fresh.add(event_id)
            batch.events.append(
                MessageSent(
                    **base,
                    message_id=event_id,
                    author=sender,
                    conversation=room_id,
                    private=private,
                    recipients=tuple(sorted(others - {sender})) if private else (),
                    text=text,
                    reply_to=reply_to if isinstance(reply_to, str) else None,
                    truncated=len(text) > 8_000,
                    mentions=mentions,
                    reply_to_author=self.author_of(reply_to) if isinstance(reply_to, str) else None,
                )
            )
        elif etype == "m.reaction":
            target = relates.get("event_id")
            if relates.get("rel_type") != "m.annotation" or not isinstance(target, str):
                self.skipped["malformed"] += 1
                return
            author = self.author_of(target)
            if author is None:
                self.skipped["reaction_unknown_target"] += 1
                return
            key = relates.get("key") if isinstance(relates.get("key"), str) else ""
            batch.events.append(ReactionAdded(**base, account=sender, author=author, message_id=target, emoji=key[:64]))
        elif etype == "m.room.redaction":
            redacts = raw.get("redacts") or content.get("redacts")
            if not isinstance(redacts, str):
                self.skipped["malformed"] += 1
                return
            batch.events.append(
                MessageDeleted(**base, message_id=redacts, conversation=room_id, author=self.author_of(redacts))
            )
        elif etype == "m.room.encrypted":
            self.skipped["encrypted"] += 1
        else:
            self.skipped["ignored_type"] += 1

    def _mentions(self, content: dict[str, Any], sender: str) -> tuple[str, ...]:
        """Users the message names: `m.mentions.user_ids`, else user pills in the formatted body."""
        declared = content.get("m.mentions")
        ids: list[Any] = []
        if isinstance(declared, dict) and isinstance(declared.get("user_ids"), list):
            ids = declared["user_ids"]
        elif isinstance(content.get("formatted_body"), str):
            ids = _PILL.findall(content["formatted_body"][:65_536])
        out = dict.fromkeys(
            u for u in ids if isinstance(u, str) and u.startswith("@") and u not in (sender, self.config.bot_user)
        )
        return tuple(u[:256] for u in list(out)[:MAX_MENTIONS])

    def _interaction(
        self,
        room_id: str,
        raw: dict[str, Any],
        etype: str,
        sender: str,
        event_id: str,
        content: dict[str, Any],
        at: datetime,
        batch: SyncBatch,
    ) -> None:
        if room_id == self.config.mod_room:
            in_dm = False
        elif self.is_bot_dm(room_id):
            in_dm = True
        else:
            # Commands typed in community rooms are ignored: any reply there would be public
            # (a child's stated age, a moderator's action) and could tip off a suspect.
            return
        relates = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else {}
        if etype == "m.reaction" and not in_dm:
            target, key = relates.get("event_id"), relates.get("key")
            if relates.get("rel_type") == "m.annotation" and isinstance(target, str) and isinstance(key, str):
                batch.interactions.append(
                    Interaction("reaction", room_id, sender, event_id, at, text=key, relates_to=target)
                )
            return
        if etype == "m.room.message" and relates.get("rel_type") != "m.replace":
            body = content.get("body")
            reply_to = relates.get("m.in_reply_to") if isinstance(relates.get("m.in_reply_to"), dict) else {}
            target = reply_to.get("event_id")
            text = strip_reply_fallback(body) if isinstance(body, str) else ""
            if not in_dm and isinstance(target, str) and text and not text.lower().startswith(COMMAND_PREFIX):
                # A moderator's reply to an alert card is a note on that case (the adapter checks which).
                batch.interactions.append(
                    Interaction("reply", room_id, sender, event_id, at, text=text[:1000], relates_to=target)
                )
                return
            if isinstance(body, str) and body.strip().lower().startswith(COMMAND_PREFIX):
                batch.interactions.append(
                    Interaction("command", room_id, sender, event_id, at, text=body.strip()[:500], in_dm=in_dm)
                )

    def _ephemeral(self, room_id: str, info: RoomInfo, raw: Any, now: datetime, batch: SyncBatch) -> None:
        if not isinstance(raw, dict) or raw.get("type") != "m.receipt":
            return  # typing notifications are filtered out server-side; anything else is ignored
        if not self.watched(room_id):
            return
        content = raw.get("content")
        if not isinstance(content, dict):
            self.skipped["malformed"] += 1
            return
        for event_id, kinds in content.items():
            reads = kinds.get("m.read") if isinstance(kinds, dict) else None
            if not isinstance(reads, dict):
                continue
            for viewer, detail in reads.items():
                if not isinstance(viewer, str) or viewer == self.config.bot_user:
                    continue
                at = at_from_ms(detail.get("ts") if isinstance(detail, dict) else None, now)
                for content_id, author in self._newly_read(room_id, viewer, event_id):
                    batch.events.append(
                        ContentViewed(
                            event_id=f"read:{room_id}:{content_id}:{viewer}",
                            platform=PLATFORM,
                            community=self.config.community,
                            at=at,
                            viewer=viewer,
                            author=author,
                            content_id=content_id,
                        )
                    )

    def _newly_read(self, room_id: str, viewer: str, event_id: str) -> list[tuple[str, str]]:
        """Messages a receipt at `event_id` marks as read that no earlier receipt did.

        A Matrix read receipt is a position: everything up to it is read, and a sync only carries
        each reader's latest one. So the views are the messages between the reader's previous
        position and this one. When that position is unknown (first receipt seen, or a restart),
        only messages first seen in this sync count: the reader cannot have read them before.
        """
        key = (room_id, viewer)
        previous = self._read_at.get(key)
        self._read_at[key] = event_id
        self._read_at.move_to_end(key)
        while len(self._read_at) > self._remembered:
            self._read_at.popitem(last=False)
        order = list(self._messages.get(room_id, ()))
        ids = [e for e, _ in order]
        if event_id not in ids:
            author = self.author_of(event_id)
            if author is None:
                self.skipped["receipt_unknown_target"] += 1
                return []
            picked = [(event_id, author)]
        else:
            end = ids.index(event_id) + 1
            if previous in ids[:end]:
                begin = ids.index(previous) + 1  # type: ignore[arg-type]
            else:
                fresh = [i for i, e in enumerate(ids[:end]) if e in self._fresh]
                begin = fresh[0] if fresh else end - 1
            picked = order[begin:end]
        return [(e, a) for e, a in picked if a != viewer and a != self.config.bot_user]


def _rooms(payload: dict[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    rooms = payload.get("rooms")
    part = rooms.get(section) if isinstance(rooms, dict) else None
    if not isinstance(part, dict):
        return
    for room_id, room in part.items():
        if isinstance(room_id, str) and isinstance(room, dict):
            yield room_id, room


def _events(room: dict[str, Any], block: str) -> Iterable[Any]:
    part = room.get(block)
    events = part.get("events") if isinstance(part, dict) else None
    return events if isinstance(events, list) else ()
