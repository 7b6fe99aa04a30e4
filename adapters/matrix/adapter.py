"""The Matrix adapter: a matrix-nio bot that syncs rooms into GroomGuard events and carries actions back out.

Input: a `/sync` loop (stored token, back-off on failure) whose payloads `translate.Translator`
turns into events, ingested durably before the token moves on. Output: alert cards in the mod
room (edited in place), DMs to children, bans and mutes in the protected rooms. Moderators act
through reactions and `!gg` commands; the adapter checks their power level and turns what they
do into `ModeratorDecision` events. No detection logic lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.adapters.matrix import cards
from groomguard.adapters.matrix.commands import DECISIONS, Command, parse, reaction_meaning
from groomguard.adapters.matrix.store import Card, MatrixStore, Mute, Prompt
from groomguard.adapters.matrix.translate import PLATFORM, Interaction, Translator, TranslatorConfig
from groomguard.config import MatrixSettings, read_secret
from groomguard.events import (
    AgeBand,
    AgeDeclared,
    AgeSource,
    Decision,
)
from groomguard.pictures import CardPicture, png_size
from groomguard.workspace import DecisionRefused, add_note, decide
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LoginResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    UploadResponse,
    WhoamiError,
)
from nio.api import Api

if TYPE_CHECKING:
    from groomguard.port import EnginePort

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Ban reason the suspect can read: says nothing about children, detection or GroomGuard.
BAN_REASON = "Removed by the community's moderators"
#: Receipt targets looked up per sync when their author is unknown (after a restart).
MAX_LOOKUPS_PER_SYNC = 50
#: Longest wait at start for the homeserver to confirm the access token.
LOGIN_TIMEOUT_S = 20.0
BACKFILL_PAGES = 10


class MatrixError(RuntimeError):
    """A homeserver call failed; wraps nio's error-as-value responses once, at the edge."""


class ModRoomRefused(RuntimeError):
    """The mod room is not safe to post into; the alert stays in the outbox until it is."""


def txn_id(kind: str, key: str) -> str:
    """A stable transaction id, so a retried send after a crash is deduplicated by the homeserver."""
    return f"gg-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class MatrixAdapter:
    """`groomguard run` with `[matrix] enabled = true`; see docs/matrix.md for setup."""

    name = "matrix"

    def __init__(self, settings: MatrixSettings, client: AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client
        self.engine: EnginePort | None = None
        self.mstore: MatrixStore | None = None
        server = settings.user_id.partition(":")[2]
        self.community = settings.community or server or "matrix"
        self.translator = Translator(
            TranslatorConfig(
                community=self.community,
                bot_user=settings.user_id,
                mod_room=settings.mod_room,
                minor_rooms=frozenset(settings.minor_rooms),
                adult_rooms=frozenset(settings.adult_rooms),
                layout_rooms=frozenset([*settings.protected_rooms, *settings.minor_rooms, *settings.adult_rooms]),
                moderator_power_level=settings.moderator_power_level,
            )
        )
        self.mod_room_problem: str | None = "not synced yet"
        self.sync_count = 0
        self.housekeeping_s = 30.0
        self._tasks: list[asyncio.Task[None]] = []
        self._first_sync = asyncio.Event()
        self._send_lock = asyncio.Lock()
        #: sha256 of an uploaded card picture → its mxc URI (an unchanged picture is not uploaded again).
        self._uploads: dict[str, str] = {}
        self._filter = {
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
            "room": {
                "timeline": {"limit": settings.timeline_limit},
                "ephemeral": {"types": ["m.receipt"]},
                "account_data": {"not_types": ["*"]},
            },
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, engine: EnginePort, wait_s: float = 15.0) -> None:
        """Log in, open the adapter's tables, start syncing; waits (bounded) for the first sync."""
        self.engine = engine
        if self.settings.invite_expiry_hours is not None:
            log.warning(
                "matrix.invite_expiry_hours is no longer used: detectors.rejections.expire_after_hours decides "
                "when an unanswered invite counts as refused; remove the key"
            )
        self.mstore = MatrixStore(engine.adapter_tables())
        await self.mstore.open()
        if self.client is None:
            self.client = AsyncClient(
                self.settings.homeserver,
                self.settings.user_id,
                config=AsyncClientConfig(
                    encryption_enabled=False, max_timeouts=1, max_limit_exceeded=3, request_timeout=30
                ),
            )
        await self._login()
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="groomguard-matrix-sync"),
            asyncio.create_task(self._housekeeping_loop(), name="groomguard-matrix-housekeeping"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_sync.wait(), wait_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.client is not None:
            await self.client.close()
        if self.mstore is not None:
            await self.mstore.close()

    async def _login(self) -> None:
        assert self.client is not None
        s = self.settings
        if s.access_token or s.access_token_file:
            self.client.access_token = read_secret(s.access_token, s.access_token_file, "matrix.access_token")
            self.client.user_id = s.user_id
            # Prove the token once at start: a wrong token or homeserver is one clear error now, not an
            # endless retry loop (later outages are retried with back-off by the sync loop).
            reply = await asyncio.wait_for(self.client.whoami(), LOGIN_TIMEOUT_S)
            if isinstance(reply, WhoamiError):
                raise MatrixError(
                    f"the homeserver {s.homeserver} refused the access token ({reply.status_code or ''} "
                    f"{reply.message}): log in again and set GROOMGUARD_MATRIX__ACCESS_TOKEN"
                )
            if s.user_id and reply.user_id != s.user_id:
                raise MatrixError(f"the access token belongs to {reply.user_id}, not {s.user_id}: fix [matrix] user_id")
            return
        if not s.password:
            read_secret(None, None, "matrix.access_token")  # raises ConfigError naming the setting
        reply = await self.client.login(s.password.get_secret_value(), device_name=s.device_name)
        if not isinstance(reply, LoginResponse):
            raise MatrixError(f"login failed for {s.user_id}: {reply}")

    @property
    def ready(self) -> bool:
        return self._first_sync.is_set()

    # -- sync -----------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Sync forever; on failure back off exponentially and log it; never lose the position."""
        assert self.mstore is not None
        await self._join_configured()
        since = await self.mstore.sync_token(self.settings.user_id)
        first, failures = True, 0
        while True:
            try:
                payload = await self._sync(since, first)
                await self._handle(payload, since, first)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                delay = min(self.settings.max_backoff_s, 0.5 * 2 ** min(failures - 1, 16))
                known = isinstance(error, MatrixError | aiohttp.ClientError | TimeoutError | OSError)
                log.warning(
                    "matrix sync failed (%s: %s); retry %d in %.1fs",
                    type(error).__name__,
                    error if known else "see traceback",
                    failures,
                    delay,
                    exc_info=not known,
                )
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("matrix homeserver reachable again after %d failed syncs", failures)
                failures = 0
            token = payload.get("next_batch")
            if isinstance(token, str):
                since = token
                await self.mstore.save_sync_token(self.settings.user_id, token, datetime.now(UTC))
            self.sync_count += 1
            if first:
                first = False
                self._first_sync.set()
                await self._catch_up_outbox()

    async def _sync(self, since: str | None, first: bool) -> dict[str, Any]:
        assert self.client is not None and self.client.access_token
        # The first sync after start asks for full state: nio keeps nothing across restarts and
        # the room state (members, power levels) is needed to read what follows.
        timeout_ms = 0 if first else self.settings.sync_timeout_ms
        method, path = Api.sync(
            self.client.access_token,
            since=since,
            timeout=timeout_ms,
            filter=self._filter,
            full_state=True if first else None,
            set_presence="offline",
        )
        response = await self.client.send(method, path, timeout=timeout_ms / 1000 + 15)
        async with response:
            if response.status != 200:
                raise MatrixError(f"/sync answered HTTP {response.status}: {(await response.text())[:200]}")
            payload = await response.json()
        if not isinstance(payload, dict):
            raise MatrixError("/sync answered something that is not a JSON object")
        return payload

    async def _handle(self, payload: dict[str, Any], since: str | None, first: bool) -> None:
        """Translate one payload, ingest its events durably, then act on what is addressed to the bot."""
        assert self.engine is not None and self.mstore is not None
        if since:
            await self._backfill(payload, since)
        await self._resolve_receipt_authors(payload)
        batch = self.translator.translate(payload)
        if batch.events:
            await self.engine.ingest(batch.events)
        if first or batch.mod_room_changed:
            self._check_mod_room()
        for interaction in batch.interactions:
            try:
                await self._interact(interaction)
            except (MatrixError, aiohttp.ClientError, TimeoutError) as error:
                log.warning("could not act on %s %s: %s", interaction.kind, interaction.event_id, error)
        if self.settings.auto_join:
            for room_id in batch.invited_to:
                await self._join(room_id)

    async def _backfill(self, payload: dict[str, Any], since: str) -> None:
        """When a room's timeline was cut short, fetch the missing events so none are skipped."""
        assert self.client is not None
        rooms = (payload.get("rooms") or {}).get("join") or {}
        for room_id, room in rooms.items():
            timeline = room.get("timeline") if isinstance(room, dict) else None
            if not isinstance(timeline, dict) or not timeline.get("limited") or not timeline.get("prev_batch"):
                continue
            missing: list[dict[str, Any]] = []
            start = timeline["prev_batch"]
            for _ in range(BACKFILL_PAGES):
                reply = await self.client.room_messages(
                    room_id, start=start, end=since, direction=MessageDirection.back, limit=100
                )
                if not isinstance(reply, RoomMessagesResponse) or not reply.chunk:
                    break
                missing.extend(e.source for e in reply.chunk)
                if not reply.end or reply.end == start:
                    break
                start = reply.end
            if missing:
                log.info("back-filled %d events in %s after a gap", len(missing), room_id)
            timeline["events"] = list(reversed(missing)) + list(timeline.get("events") or [])

    async def _resolve_receipt_authors(self, payload: dict[str, Any]) -> None:
        assert self.client is not None
        for room_id, event_id in self.translator.unknown_receipt_targets(payload)[:MAX_LOOKUPS_PER_SYNC]:
            reply = await self.client.room_get_event(room_id, event_id)
            if isinstance(reply, RoomGetEventResponse):
                self.translator.remember(event_id, reply.event.sender)

    # -- housekeeping: unmute --------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.housekeeping_s)
            if not self.ready:
                continue
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matrix housekeeping failed; will retry")

    async def housekeeping(self, now: datetime | None = None) -> None:
        """Lift mutes whose time is up. (Invites left unanswered are not the adapter's: the engine expires
        them for the rejections detector, `Engine.expire_requests`.)"""
        assert self.engine is not None and self.mstore is not None
        now = now or datetime.now(UTC)
        for mute in await self.mstore.mutes_due(now):
            await self._set_power(mute.room_id, mute.account, mute.previous)
            await self.mstore.drop_mute(mute.room_id, mute.account)
            log.info("mute of %s in %s lifted", mute.account, mute.room_id)

    # -- rooms ----------------------------------------------------------------------------

    async def _join_configured(self) -> None:
        s = self.settings
        for room_id in dict.fromkeys([s.mod_room, *s.protected_rooms, *s.minor_rooms, *s.adult_rooms]):
            if room_id:
                await self._join(room_id)

    async def _join(self, room_id: str) -> None:
        assert self.client is not None
        try:
            reply = await self.client.join(room_id)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("could not join %s: %s", room_id, error)
            return
        if isinstance(reply, ErrorResponse):
            log.warning("could not join %s: %s", room_id, reply.message)

    def protected_rooms(self) -> list[str]:
        """Where bans and mutes apply: the configured rooms, or every watched room when none are."""
        s = self.settings
        configured = list(dict.fromkeys([*s.protected_rooms, *s.minor_rooms, *s.adult_rooms]))
        if configured:
            return configured
        bot = self.settings.user_id
        return sorted(
            r
            for r, info in self.translator.rooms.items()
            if self.translator.watched(r) and info.members.get(bot) == "join"
        )

    def _check_mod_room(self) -> None:
        """Refuse a mod room that strangers can join or read; log why whenever the verdict changes."""
        problem = self.mod_room_check()
        if problem != self.mod_room_problem:
            if problem:
                log.error("refusing to post alerts into mod room %s: %s", self.settings.mod_room, problem)
            else:
                log.info("mod room %s is private and moderators-only; alerts enabled", self.settings.mod_room)
        self.mod_room_problem = problem

    def mod_room_check(self) -> str | None:
        s, bot = self.settings, self.settings.user_id
        if not s.mod_room:
            return "no mod_room is configured"
        info = self.translator.rooms.get(s.mod_room)
        if info is None or info.members.get(bot) != "join":
            return "the bot is not a member of the mod room; invite it"
        if info.join_rule not in ("invite", "private"):
            return f"its join rule is {info.join_rule or 'unknown'!r}; make the room invite-only"
        if info.history_visibility not in ("joined", "invited"):
            # Anyone invited later (a new moderator, or someone invited by mistake) would read every past card.
            return (
                f"its history visibility is {info.history_visibility!r}, so members invited later read every past "
                "card; set m.room.history_visibility to 'invited' (Room settings → Security & Privacy → "
                "Who can read history? → Members only, since they were invited)"
            )
        if info.guest_access == "can_join":
            return "guest access is on ('can_join'); set m.room.guest_access to 'forbidden' (Room settings → Security)"
        outsiders = sorted(u for u in info.present() if u != bot and info.power_of(u) < s.moderator_power_level)
        if outsiders:
            shown = ", ".join(outsiders[:5]) + (" ..." if len(outsiders) > 5 else "")
            return (
                f"{len(outsiders)} member(s) have power level below {s.moderator_power_level}: {shown}; "
                "remove them or raise their power level"
            )
        return None

    # -- sending --------------------------------------------------------------------------

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """Await a nio call and turn its error-as-value into MatrixError."""
        reply = await call
        if isinstance(reply, ErrorResponse):
            raise MatrixError(f"{what}: {reply.status_code or ''} {reply.message}")
        return reply

    async def _send(self, room_id: str, content: dict[str, Any], txn: str, event_type: str = "m.room.message") -> str:
        assert self.client is not None
        reply = await self._call(f"send to {room_id}", self.client.room_send(room_id, event_type, content, tx_id=txn))
        assert isinstance(reply, RoomSendResponse)
        return str(reply.event_id)

    async def _reply(self, room_id: str, event_id: str, content: dict[str, Any]) -> None:
        await self._send(room_id, content, txn_id("reply", event_id))

    # -- actions out ----------------------------------------------------------------------

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        """Carry one action out on Matrix; ignores other platforms; idempotent on action_id."""
        if action.platform != PLATFORM:
            return
        if self.mstore is None or self.client is None or not self.ready:
            raise MatrixError("matrix adapter not started yet; the action stays in the outbox")
        if await self.mstore.delivered(action.action_id):
            return
        if isinstance(action, ModAlert):
            event_id = await self._post_card(action)
        elif isinstance(action, ChildNotice):
            event_id = await self._notify_child(action)
        else:
            event_id = await self._enforce(action)
        await self.mstore.mark_delivered(action.action_id, event_id, datetime.now(UTC))

    async def _catch_up_outbox(self) -> None:
        """Deliver what the engine tried to hand over before this adapter was started."""
        assert self.engine is not None
        pending = [a for a in await self.engine.pending_actions() if a.platform == PLATFORM]
        done = []
        for action in pending:
            try:
                await self.deliver(action)
                done.append(action.action_id)
            except Exception as error:
                log.warning("pending action %s not delivered yet: %s", action.action_id, error)
        if done:
            # Acknowledge in the engine's outbox too, as the engine would have had we been started.
            await self.engine.mark_delivered(done)
            log.info("delivered %d matrix actions left over from before start", len(done))

    async def _post_card(self, alert: ModAlert) -> str | None:
        assert self.mstore is not None
        self._check_mod_room()
        if self.mod_room_problem:
            raise ModRoomRefused(self.mod_room_problem)
        room = self.settings.mod_room
        content = await self._card_extras(alert, cards.alert_card(alert))
        card = await self.mstore.card(alert.community, alert.case_id)
        if card is not None and card.room_id == room:
            if alert.version <= card.version:
                return card.event_id
            await self._send(room, cards.replacement(card.event_id, content), txn_id("card", alert.action_id))
            await self.mstore.save_card(Card(room, card.event_id, alert.version, alert.case_id, alert.community))
            return card.event_id
        event_id = await self._send(room, content, txn_id("card", alert.action_id))
        await self.mstore.save_card(Card(room, event_id, alert.version, alert.case_id, alert.community))
        log.info("alert card for case %d posted as %s", alert.case_id, event_id)
        return event_id

    async def _card_extras(self, alert: ModAlert, content: dict[str, Any]) -> dict[str, Any]:
        """The web view link and the case picture on a card (kept apart from the card text in cards.py)."""
        assert self.engine is not None
        content = cards.with_case_link(content, self.engine.case_link(alert.case_id))
        picture = await self.engine.case_picture(alert.case_id)
        if picture is None:
            return content
        uri = await self._upload_picture(picture)
        if uri is None:
            return content
        width, height = png_size(picture.png)
        return cards.with_picture(content, uri, picture.alt, width, height)

    async def _upload_picture(self, picture: CardPicture) -> str | None:
        """Upload a card picture once (same bytes, same mxc URI); a failed upload leaves the card without it."""
        assert self.client is not None
        key = hashlib.sha256(picture.png).hexdigest()
        if key in self._uploads:
            return self._uploads[key]
        try:
            reply, _ = await self.client.upload(
                io.BytesIO(picture.png), content_type="image/png", filename=picture.filename, filesize=len(picture.png)
            )
        except Exception:
            log.warning("upload of %s failed; the card goes without its picture", picture.filename, exc_info=True)
            return None
        if not isinstance(reply, UploadResponse):
            log.warning("upload of %s refused: %s; the card goes without its picture", picture.filename, reply)
            return None
        if len(self._uploads) >= 512:
            self._uploads.pop(next(iter(self._uploads)))
        self._uploads[key] = str(reply.content_uri)
        return self._uploads[key]

    async def _notify_child(self, notice: ChildNotice) -> str:
        """Send the notice in a 1:1 room with the child (reused when the child is still in it)."""
        room = await self._dm_room(notice.child)
        content = {"msgtype": "m.text", "body": notice.text}
        event_id = await self._send(room, content, txn_id("notice", notice.action_id))
        log.info("child notice %s sent in %s", notice.action_id, room)
        return event_id

    async def _dm_room(self, child: str) -> str:
        assert self.mstore is not None and self.client is not None
        room = await self.mstore.dm_room(child)
        if room is not None:
            info = self.translator.rooms.get(room)
            # Reuse the room only while it is exactly the bot and the child: anyone else in it (a suspect
            # the child was talked into inviting) would read every notice.
            if (
                info is not None
                and info.present() == {self.settings.user_id, child}
                and info.members.get(self.settings.user_id) == "join"
            ):
                return room
        reply = await self._call(
            f"open a DM with {child}",
            self.client.room_create(
                visibility=RoomVisibility.private,
                is_direct=True,
                invite=[child],
                preset=RoomPreset.private_chat,
                # Only the bot may invite others; members read history only from their own invite on.
                power_level_override={"invite": 100},
                initial_state=[
                    {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}}
                ],
            ),
        )
        assert isinstance(reply, RoomCreateResponse)
        await self.mstore.save_dm_room(child, reply.room_id)
        return str(reply.room_id)

    async def _enforce(self, action: Enforcement) -> str | None:
        """Ban from, or mute in, every protected room; report what worked in the mod room."""
        rooms = self.protected_rooms()
        done: list[str] = []
        failed: list[str] = []
        until = datetime.now(UTC) + timedelta(minutes=action.duration_minutes or self.settings.mute_minutes)
        for room_id in rooms:
            try:
                if action.decision is Decision.BAN:
                    assert self.client is not None
                    await self._call(f"ban in {room_id}", self.client.room_ban(room_id, action.suspect, BAN_REASON))
                else:
                    await self._mute(room_id, action.suspect, until)
                done.append(room_id)
            except MatrixError as error:
                failed.append(room_id)
                log.warning("%s of %s in %s failed: %s", action.decision.value, action.suspect, room_id, error)
        verb = "banned" if action.decision is Decision.BAN else f"muted until {until:%H:%M} UTC"
        summary = (
            f"Case #{action.case_id}: {action.suspect} {verb} in {len(done)} protected room(s) by {action.moderator}."
        )
        if failed:
            summary += f" Could not in {len(failed)}: {', '.join(failed)} (the bot needs enough power there)."
        if not self.mod_room_problem:
            await self._send(self.settings.mod_room, cards.text(summary), txn_id("enforce", action.action_id))
        return None

    async def _mute(self, room_id: str, account: str, until: datetime) -> None:
        """Mute = the user's power level set below `events_default`, so they cannot post; lifted later."""
        assert self.mstore is not None
        content = await self._power_levels(room_id)
        users = content.get("users") if isinstance(content.get("users"), dict) else {}
        previous = users.get(account)
        events_default = content.get("events_default", 0)
        await self._set_power(room_id, account, (events_default if isinstance(events_default, int) else 0) - 1)
        await self.mstore.save_mute(Mute(room_id, account, until, previous if isinstance(previous, int) else None))

    async def _power_levels(self, room_id: str) -> dict[str, Any]:
        assert self.client is not None
        reply = await self._call(
            f"read power levels of {room_id}", self.client.room_get_state_event(room_id, "m.room.power_levels")
        )
        assert isinstance(reply, RoomGetStateEventResponse)
        return dict(reply.content)

    async def _set_power(self, room_id: str, account: str, level: int | None) -> None:
        assert self.client is not None
        content = await self._power_levels(room_id)
        users = dict(content.get("users") or {})
        if level is None:
            users.pop(account, None)
        else:
            users[account] = level
        content["users"] = users
        await self._call(
            f"set power levels in {room_id}", self.client.room_put_state(room_id, "m.room.power_levels", content)
        )

    # -- moderators and users in -----------------------------------------------------------

    def power_in_mod_room(self, user: str) -> int:
        info = self.translator.rooms.get(self.settings.mod_room)
        return info.power_of(user) if info is not None else -1

    async def _interact(self, item: Interaction) -> None:
        assert self.engine is not None
        if item.in_dm:
            await self._dm_command(item)
            return
        level = self.power_in_mod_room(item.sender)
        if level < self.settings.moderator_power_level:
            # Not a moderator: nothing happens, but the attempt is on record.
            await self.engine.audit(
                item.at,
                item.sender,
                "matrix_ignored_non_moderator",
                {"kind": item.kind, "event": item.event_id, "power_level": level},
                self.community,
            )
            log.info("ignored %s %s from non-moderator %s", item.kind, item.event_id, item.sender)
            return
        if item.kind == "reaction":
            await self._on_reaction(item)
        elif item.kind == "reply":
            await self._on_reply(item)
        else:
            await self._on_command(item, parse(item.text))

    async def _on_reply(self, item: Interaction) -> None:
        """A moderator's reply to an alert card: the reply's text is attached to that case as a note."""
        assert self.mstore is not None and self.engine is not None
        card = await self.mstore.card_by_event(item.relates_to)
        if card is None:
            return  # a reply to something else in the mod room (a prompt, a command's answer): not a note
        try:
            added = await add_note(
                self.engine,
                card.case_id,
                item.sender,
                item.text,
                event_id=item.event_id,
                community=card.community,
                at=item.at,
            )
        except DecisionRefused as refused:
            await self._reply(self.settings.mod_room, item.event_id, cards.text(f"Note not saved: {refused}."))
            return
        if added:
            await self._reply(
                self.settings.mod_room, item.event_id, cards.text(f"Note added to case #{card.case_id}'s record.")
            )

    async def _decide(
        self, item: Interaction, case_id: int, community: str, decision: Decision, note: str = ""
    ) -> None:
        assert self.engine is not None
        try:
            await decide(
                self.engine,
                case_id,
                decision,
                item.sender,
                note,
                event_id=item.event_id,
                community=community,
                at=item.at,
                duration_minutes=self.settings.mute_minutes if decision is Decision.TIMEOUT else None,
            )
        except DecisionRefused as refused:
            log.info("decision %s on case %s not applied: %s", item.event_id, case_id, refused)
            await self._reply(self.settings.mod_room, item.event_id, cards.text(f"Not applied: {refused}."))

    async def _on_reaction(self, item: Interaction) -> None:
        assert self.mstore is not None and self.engine is not None
        meaning = reaction_meaning(item.text)
        if meaning is None:
            return
        prompt = await self.mstore.prompt(item.relates_to)
        if prompt is not None:
            if meaning == "confirm":
                note = f"asked by {prompt.asked_by}, confirmed by {item.sender}"
                await self._decide(item, prompt.case_id, prompt.community, Decision(prompt.decision), note)
            return
        card = await self.mstore.card_by_event(item.relates_to)
        if card is None:
            return
        if meaning == "ban":
            found = await self.engine.get_case(card.case_id)
            suspect = found[0].suspect if found is not None else "the suspect"
            rooms = len(self.protected_rooms())
            question = (
                f"🔨 Ban {suspect} from {rooms} protected room(s) for case #{card.case_id}? "
                "A moderator reacts ✅ to THIS message to confirm."
            )
            event_id = await self._send(self.settings.mod_room, cards.text(question), txn_id("prompt", item.event_id))
            await self.mstore.save_prompt(
                Prompt(event_id, card.community, card.case_id, Decision.BAN.value, item.sender), item.at
            )
            return
        await self._decide(item, card.case_id, card.community, DECISIONS[meaning])

    async def _on_command(self, item: Interaction, command: Command) -> None:
        assert self.engine is not None and self.mstore is not None
        room = self.settings.mod_room
        if command.error:
            await self._reply(room, item.event_id, cards.text(f"{command.error}\n\n{cards.HELP_TEXT}"))
            return
        if command.name == "cases":
            rows = await self.engine.case_queue(community=self.community, limit=20)
            await self._reply(room, item.event_id, cards.case_list(rows))
        elif command.name == "case" and command.case_id is not None:
            shown = await self.engine.case_detail(command.case_id)
            if shown is None:
                await self._reply(room, item.event_id, cards.text(f"No case #{command.case_id}."))
                return
            await self._reply(room, item.event_id, cards.case_detail(shown[0]))
        elif command.name == "age" and command.user and command.band:
            await self._declare_age(item, command.user, command.band, AgeSource.MODERATOR)
            await self._reply(room, item.event_id, cards.text(f"Noted: {command.user} is {command.band.value}."))
        elif command.name == "forget" and command.user:
            removed = await self.engine.forget(command.user, self.community)
            removed_here = await self.mstore.forget(command.user)
            self.translator.forget(command.user)
            total = sum(removed.values()) + removed_here
            await self._reply(room, item.event_id, cards.text(f"Erased {total} stored records about {command.user}."))
        elif command.name == "self_age":
            await self._reply(room, item.event_id, cards.text("Use !gg age @user minor|adult here."))
        else:
            await self._reply(room, item.event_id, cards.text(cards.HELP_TEXT))

    async def _declare_age(
        self, item: Interaction, account: str, band: AgeBand, source: AgeSource, age: int | None = None
    ) -> None:
        """Report an age the command in `item` declared (a moderator's for anyone, a user's own in a DM)."""
        assert self.engine is not None
        declared = AgeDeclared(
            event_id=item.event_id,
            platform=PLATFORM,
            community=self.community,
            at=item.at,
            account=account,
            band=band,
            age=age,
            source=source,
        )
        await self.engine.ingest([declared])

    async def _dm_command(self, item: Interaction) -> None:
        """What a user may do in their 1:1 room with the bot: declare their own age, ask for help."""
        assert self.engine is not None
        command = parse(item.text)
        if command.name == "self_age" and command.band is not None and not command.error:
            await self._declare_age(item, item.sender, command.band, AgeSource.SELF, command.age)
            await self._reply(item.room_id, item.event_id, cards.text("Thank you, I've noted that. Stay safe!"))
            return
        reply = cards.DM_HELP_TEXT if not command.error else f"{command.error}. {cards.DM_HELP_TEXT}"
        await self._reply(item.room_id, item.event_id, cards.text(reply))


__all__ = ["MatrixAdapter", "MatrixError", "ModRoomRefused"]
