"""Test harness for the Discord adapter: real discord.py state fed recorded gateway frames, REST captured at its two boundaries."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import discord
from discord.ext import commands
from discord.webhook.async_ import AsyncWebhookAdapter
from groomguard.adapters.discord import DiscordAdapter
from groomguard.config import Settings
from groomguard.detectors.base import DetectorState
from groomguard.engine import Engine
from groomguard.events import BaseEvent, MessageSent
from groomguard.findings import Evidence, Finding
from groomguard.testing import make_settings

PAYLOADS = Path(__file__).with_name("payloads")
API = "https://discord.com/api/v10"

GUILD = 1100000000000000001
GENERAL = 1100000000000000010
MOD_CHANNEL = 1100000000000000011
THREAD = 1100000000000000012
MOD_ROLE = 1100000000000000101
BOT_ID = 1200000000000000001
MODERATOR = 1200000000000000002
SUSPECT = 1200000000000000003
BYSTANDER = 1200000000000000004
KIDS = [1200000000000000011 + i for i in range(5)]


def frame(name: str) -> dict[str, Any]:
    """One recorded gateway frame ({op, s, t, d}) from payloads/, as a fresh copy."""
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text(encoding="utf-8")))


@dataclass
class Call:
    """One REST request as discord.py would have sent it."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    reason: str | None = None
    via: str = "http"
    response: Any = None
    #: Files sent with the request (multipart): (filename, bytes).
    files: list[tuple[str, bytes]] = field(default_factory=list)


class _Response:
    """The two attributes discord.HTTPException reads from an aiohttp response."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


@dataclass
class Rest:
    """Stands in for Discord's servers at discord.py's HTTP boundary and records every call."""

    calls: list[Call] = field(default_factory=list)
    closed_dms: set[int] = field(default_factory=set)
    ids: ClassVar[itertools.count[int]] = itertools.count(1600000000000000001)
    dm_channels: dict[int, int] = field(default_factory=dict)
    #: Seconds each REST call takes; above 0 lets concurrent deliveries interleave as they would live.
    latency: float = 0.0

    def find(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]

    def _message(
        self, channel_id: int | str, body: dict[str, Any] | None, message_id: int | None = None
    ) -> dict[str, Any]:
        body = body or {}
        return {
            "id": str(message_id or next(self.ids)),
            "channel_id": str(channel_id),
            "author": {
                "id": str(BOT_ID),
                "username": "groomguard",
                "discriminator": "4821",
                "avatar": None,
                "bot": True,
            },
            "content": body.get("content") or "",
            "timestamp": "2026-03-02T09:30:00.000000+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
        }

    async def request(self, route: discord.http.Route, **kwargs: Any) -> Any:
        """Replacement for discord.http.HTTPClient.request."""
        if self.latency:
            await asyncio.sleep(self.latency)
        body = kwargs.get("json")
        if body is None and kwargs.get("form"):
            body = json.loads(next(p["value"] for p in kwargs["form"] if p["name"] == "payload_json"))
        call = Call(route.method, route.url.removeprefix(API), body, kwargs.get("params"), kwargs.get("reason"))
        call.files = [(f.filename, f.fp.getvalue()) for f in kwargs.get("files") or [] if hasattr(f.fp, "getvalue")]
        self.calls.append(call)
        call.response = self._answer(route, body)
        return call.response

    def _answer(self, route: discord.http.Route, body: Any) -> Any:
        """Canned Discord responses, shaped like the API reference, for the routes the adapter uses."""
        method, path = route.method, route.url.removeprefix(API)
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/users/@me/channels":
            user = int(body["recipient_id"])
            channel = self.dm_channels.setdefault(user, next(self.ids))
            return {
                "id": str(channel),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [{"id": str(user), "username": f"user{user}", "discriminator": "0", "avatar": None}],
            }
        if method == "POST" and parts[0] == "channels" and parts[2:] == ["messages"]:
            channel = int(parts[1])
            if channel in {self.dm_channels.get(u) for u in self.closed_dms}:
                raise discord.Forbidden(
                    _Response(403, "Forbidden"), {"code": 50007, "message": "Cannot send messages to this user"}
                )
            return self._message(channel, body)
        if method == "PATCH" and parts[0] == "channels" and len(parts) == 4:
            return self._message(parts[1], body, int(parts[3]))
        if method == "PATCH" and parts[0] == "guilds" and parts[2] == "members":
            return {
                "user": {"id": parts[3], "username": "x", "discriminator": "0", "avatar": None},
                "roles": [],
                "joined_at": "2025-09-01T10:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "communication_disabled_until": (body or {}).get("communication_disabled_until"),
            }
        if method == "PUT" and parts[0] == "applications":
            return []
        return None

    async def webhook_request(
        self, adapter: AsyncWebhookAdapter, route: Any, session: Any = None, **kwargs: Any
    ) -> Any:
        """Replacement for AsyncWebhookAdapter.request: interaction callbacks and follow-ups go this way."""
        payload = kwargs.get("payload")
        if payload is None and kwargs.get("multipart"):
            payload = json.loads(next(p["value"] for p in kwargs["multipart"] if p["name"] == "payload_json"))
        path = unquote(route.url.removeprefix(API))
        self.calls.append(Call(route.method, path, payload, kwargs.get("params"), kwargs.get("reason"), via="webhook"))
        if path.endswith("/callback"):
            return {"interaction": {"id": str(route.webhook_id), "type": (payload or {}).get("type", 4)}}
        return self._message(MOD_CHANNEL, (payload or {}).get("data", payload), None)

    def callbacks(self) -> list[dict[str, Any]]:
        """Interaction callback bodies in order: {"type": 4|5|6|7, "data": {...}}."""
        return [c.json for c in self.calls if c.via == "webhook" and c.path.endswith("/callback")]

    def followups(self) -> list[dict[str, Any]]:
        return [c.json for c in self.calls if c.via == "webhook" and not c.path.endswith("/callback")]


class ScriptedLanguageDetector:
    """Test stand-in for `grooming_language` (being written elsewhere): fixed phrases, adult → minor recipients only.

    It lives in the tests, not the adapter, so the adapter still only translates and renders.
    """

    name: ClassVar[str] = "grooming_language"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True
    PHRASES: ClassVar[tuple[str, ...]] = ("our little secret", "just between us", "add me on snap")

    def __init__(self, score: float = 0.9) -> None:
        # Below cases.alert_threshold (0.6) a finding notifies the child but opens no card.
        self.score = score

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, MessageSent) or not any(p in event.text.lower() for p in self.PHRASES):
            return ()
        author = await state.account(event.community, event.author)
        if not author.may_be_adult:
            return ()
        for recipient in event.recipients:
            if (await state.account(event.community, recipient)).is_minor:
                return (
                    Finding(
                        detector=self.name,
                        platform=event.platform,
                        community=event.community,
                        suspect=event.author,
                        score=self.score,
                        reason="asked a young person to keep a secret and move to another app",
                        evidence=(Evidence(kind="message", ref=event.message_id, label="secrecy, off-platform"),),
                        at=event.at,
                        event_key=event.key,
                        child=recipient,
                        notify_child=True,
                        stages=("secrecy", "off_platform"),
                    ),
                )
        return ()


def discord_settings(db: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "discord__enabled": True,
        "discord__guild_ids": [GUILD],
        "discord__mod_channel_id": MOD_CHANNEL,
        "discord__moderator_role_ids": [MOD_ROLE],
        "discord__age_roles": {"13-15": "minor", "16-17": "minor", "18+": "adult"},
        "discord__region_roles": {"North": "north"},
    }
    values.update(overrides)
    return make_settings(db, **values)


@dataclass
class Harness:
    """A real commands.Bot + DiscordAdapter + Engine on one SQLite file, with gateway frames fed by hand."""

    bot: commands.Bot
    adapter: DiscordAdapter
    engine: Engine
    rest: Rest
    stopped: bool = False

    @property
    def state(self) -> Any:
        return self.bot._connection

    def feed(self, payload: dict[str, Any]) -> None:
        """Hand one gateway frame to discord.py's ConnectionState parser for its event type."""
        getattr(self.state, "parse_" + payload["t"].lower())(payload["d"])

    async def push(self, *names: str) -> None:
        """Feed recorded frames one by one, letting discord.py's listener tasks run between them as a live socket would."""
        for name in names:
            self.feed(frame(name))
            await asyncio.sleep(0.01)

    async def settle(self) -> None:
        """Let discord.py's dispatched listener tasks run, then wait for the engine to process and deliver."""
        for _ in range(4):
            await asyncio.sleep(0.02)
            await self.engine.drain()
        await asyncio.sleep(0.02)

    async def connect(self, ready: dict[str, Any] | None = None, guild: dict[str, Any] | None = None) -> None:
        self.feed(ready or frame("ready.json"))
        self.feed(guild or frame("guild_create.json"))

    def card_calls(self) -> list[Call]:
        """Posts and edits of alert cards in the mod channel, in order."""
        prefix = f"/channels/{MOD_CHANNEL}/messages"
        return [
            c
            for c in self.rest.calls
            if c.via == "http"
            and c.path.startswith(prefix)
            and c.method in ("POST", "PATCH")
            and c.json.get("components")
        ]

    def card_message(self) -> dict[str, Any]:
        """The latest card as Discord echoes it inside a component interaction (with its components)."""
        return copy.deepcopy(self.card_calls()[-1].response)

    def press(
        self,
        custom_id: str,
        user: int = MODERATOR,
        message: dict[str, Any] | None = None,
        values: list[str] | None = None,
        roles: list[str] | None = None,
        permissions: int | None = None,
    ) -> None:
        """A component interaction (button or select) from `user` on `message`."""
        payload = frame("interaction_button.json")
        d = payload["d"]
        d["id"] = str(next(Rest.ids))
        d["data"] = {"custom_id": custom_id, "component_type": 3 if values is not None else 2}
        if values is not None:
            d["data"]["values"] = values
        d["message"] = message
        self._as_user(d, user, roles, permissions)
        self.feed(payload)

    def submit_modal(
        self,
        custom_id: str,
        note: str,
        user: int = MODERATOR,
        message: dict[str, Any] | None = None,
        permissions: int | None = None,
    ) -> None:
        """A modal submit (interaction type 5) as Discord sends it: the text input inside an action row.

        `message` is the message whose component opened the modal (Discord includes it then)."""
        payload = frame("interaction_modal_submit.json")
        d = payload["d"]
        d["id"] = str(next(Rest.ids))
        d["data"] = {
            "custom_id": custom_id,
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": "note", "value": note}]}],
        }
        d["message"] = message
        self._as_user(d, user, None, permissions)
        self.feed(payload)

    def slash(
        self, name: str, user: int = MODERATOR, roles: list[str] | None = None, permissions: int | None = None
    ) -> None:
        payload = frame(name)
        payload["d"]["id"] = str(next(Rest.ids))
        self._as_user(payload["d"], user, roles, permissions)
        self.feed(payload)

    def _as_user(self, d: dict[str, Any], user: int, roles: list[str] | None, permissions: int | None) -> None:
        if user == MODERATOR:
            return
        guild_data = frame("guild_create.json")["d"]
        member = next(m for m in guild_data["members"] if m["user"]["id"] == str(user))
        d["member"] = {
            **member,
            "roles": roles if roles is not None else member["roles"],
            "permissions": str(permissions if permissions is not None else 68672 | 16384 | 32768),
        }


async def stop(harness: Harness) -> None:
    """Stop engine (drains through the adapter), then the adapter; safe to call twice."""
    if harness.stopped:
        return
    harness.stopped = True
    await harness.engine.stop()
    await harness.adapter.stop()
    await harness.bot.close()
