"""Webhook ingest: an aiohttp server taking signed single events or batches, stored before it answers 2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from groomguard.actions import ChildNotice
from groomguard.config import WebhookSettings, read_secret
from groomguard.events import (
    AgeDeclared,
    AgeSource,
    BaseEvent,
    EventError,
    ModeratorDecision,
    dump_event,
    parse_event,
    same_event,
)

if TYPE_CHECKING:
    from groomguard.actions import Enforcement, ModAlert
    from groomguard.port import EnginePort

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-GroomGuard-Timestamp"
SIGNATURE_HEADER = "X-GroomGuard-Signature"
#: Sent with every child notice: the action id, the same on every redelivery, so the platform can drop a repeat
#: (the IETF httpapi Idempotency-Key header; the body's `action_id` carries the same value).
IDEMPOTENCY_HEADER = "Idempotency-Key"
PATH = "/events"
#: Most events accepted in one request; the body limit usually bites first.
MAX_BATCH = 5_000
#: Distinct sources whose rate-limit buckets are remembered; past it the oldest are dropped.
MAX_SOURCES = 10_000
#: Deepest JSON nesting accepted; events are two levels deep, so this leaves room and refuses bombs.
MAX_DEPTH = 32


class BodyError(Exception):
    """A request body that cannot be read in full: too large, or too slow (the status says which)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.Request, limit: int, seconds: float) -> bytes:
    """The whole body, however it arrives (in pieces, chunked), bounded by `limit` bytes and `seconds`.

    `StreamReader.read(n)` returns what is buffered so far, not the whole body: a signed body that
    arrives in two pieces would be verified on its first piece only and refused.
    """
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, f"body is larger than {limit} bytes; send smaller batches")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.read(65_536):
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, f"body is larger than {limit} bytes; send smaller batches")
                parts.append(chunk)
    except TimeoutError:
        raise BodyError(408, f"body not received within {seconds:g} s; send it at once") from None
    return b"".join(parts)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON `value` nests deeper than `limit` (iterative, so a bomb cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


#: Platforms whose own adapters deliver child notices; the webhook leaves theirs alone by default.
SELF_DELIVERING = frozenset({"discord", "matrix"})
NOTICE_TIMEOUT_S = 10.0


class NoticeRefused(RuntimeError):
    """The platform did not take a child notice; it stays in the outbox and is sent again later."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header value a sender must send: HMAC-SHA256 over '<timestamp>.' + raw body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class RateLimiter:
    """A token bucket per key: `rate` requests a second with a burst of the same size."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, source: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= MAX_SOURCES and source not in self._buckets:
            self._buckets.pop(next(iter(self._buckets)))
        if tokens < 1:
            self._buckets[source] = (tokens, now)
            return False
        self._buckets[source] = (tokens - 1, now)
        return True


def problem(status: int, error: str, field: str | None = None, **extra: Any) -> web.Response:
    """A 4xx/5xx JSON body that names the field at fault."""
    return web.json_response({"error": error, "field": field, **extra}, status=status)


class WebhookAdapter:
    """Accepts events over HTTP from a platform that owns its data; it has no way to send actions back."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        #: Per authenticated sender (the platform the signed events come from), checked after the signature.
        self.limiter = RateLimiter(settings.rate_per_second)
        #: Per peer address, spent only by requests that fail authentication: a flood of unsigned or
        #: badly signed requests is answered 429 cheaply (no log line, no count) and never uses up the
        #: budget of a real sender, even one behind the same reverse proxy.
        self.unauthenticated = RateLimiter(settings.unauthenticated_per_second)
        self._secret: bytes | None = None
        self._engine: EnginePort | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        """The aiohttp application (exposed for embedding behind another server)."""
        # Our own limit is enforced while reading; aiohttp's is set just above it as a backstop.
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_post(PATH, self.handle)
        app.router.add_get("/healthz", self.health)
        return app

    async def start(self, engine: EnginePort) -> None:
        """Read the secret (refusing to start without one) and listen on settings.host:port."""
        self._secret = read_secret(self.settings.secret, self.settings.secret_file, "webhook.secret").encode()
        self._engine = engine
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self.settings.port
        log.info("webhook listening on %s:%s%s", self.settings.host, self.port, PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        """POST child notices to the platform's `notice_url`, which shows them to the child privately.

        Alerts and enforcement are not pushed back (moderators read them in GroomGuard's mod tools or
        the --out JSON Lines). A notice the platform does not acknowledge with a 2xx raises, so it stays
        in the outbox and is sent again. Delivery is at least once: a redelivery (after a timeout, or by
        the engine that took over a killed one's partitions) carries the same `Idempotency-Key` header and
        `action_id`, on which the platform must drop repeats. The body names the child only: the suspect
        is never in it.
        """
        url = self.settings.notice_url
        if not isinstance(action, ChildNotice) or not url or not self._delivers_for(action.platform):
            return
        if self._secret is None:
            self._secret = read_secret(self.settings.secret, self.settings.secret_file, "webhook.secret").encode()
        body = action.model_dump_json().encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.decode(), timestamp, body),
            IDEMPOTENCY_HEADER: action.action_id,
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=NOTICE_TIMEOUT_S)) as session,
                session.post(url, data=body, headers=headers) as reply,
            ):
                if not 200 <= reply.status < 300:
                    raise NoticeRefused(f"{url} answered HTTP {reply.status} to notice {action.action_id}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NoticeRefused(f"could not post notice {action.action_id} to {url}: {error}") from error
        log.info("webhook: child notice %s handed to the platform", action.action_id)

    def _delivers_for(self, platform: str) -> bool:
        wanted = self.settings.notice_platforms
        return platform in wanted if wanted else platform not in SELF_DELIVERING

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one POST; every refused request (4xx) is counted in the engine's rejected inputs."""
        response = await self._answer(request)
        if 400 <= response.status < 500 and self._engine is not None:
            self._engine.reject("webhook")
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        """Read the whole body; check timestamp and signature, then the sender's rate; validate; store; answer."""
        address = request.remote or "unknown"
        checked = self._check_headers(request)
        if checked is None:
            try:
                body = await read_body(request, self.settings.max_body_bytes, self.settings.read_timeout_seconds)
            except BodyError as error:
                return problem(error.status, error.reason, "body")
            checked = self._check_signature(request, body)
        if checked is not None:
            if not self.unauthenticated.allow(address):
                return problem(429, "too many unauthenticated requests; slow down", None, retry_after_s=1)
            log.warning("webhook: rejected request from %s: %s", address, checked.text)
            return checked
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return problem(400, f"body is not valid JSON: {error}", "body")
        except RecursionError:
            return problem(400, f"body nests deeper than {MAX_DEPTH} levels", "body")
        if too_deep(payload):
            return problem(400, f"body nests deeper than {MAX_DEPTH} levels", "body")
        sender = _sender(payload)
        if not self.limiter.allow(sender):
            log.warning("webhook: rate limit hit by sender %s (from %s)", sender, address)
            return problem(429, "too many requests; slow down", None, retry_after_s=1)
        source = f"{sender}@{address}"
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            return problem(400, "empty batch; send an event object or a non-empty array of events", "body")
        if len(items) > MAX_BATCH:
            return problem(413, f"more than {MAX_BATCH} events in one request", "body")
        events: list[BaseEvent] = []
        for index, item in enumerate(items):
            prefix = f"[{index}]" if isinstance(payload, list) else ""
            if not isinstance(item, dict):
                return problem(422, "each event must be a JSON object", prefix or "body", index=index)
            try:
                event = parse_event(item)  # type: ignore[arg-type]
            except EventError as error:
                field = ".".join(p for p in (prefix, error.field) if p) or None
                return problem(422, error.reason, field, index=index)
            late = self._engine.time_problem(event) if self._engine is not None else None
            if late is not None:
                return problem(422, late, ".".join(p for p in (prefix, "at") if p), index=index)
            if not self.settings.allow_moderator_events and _speaks_for_a_moderator(event):
                # The signature proves which platform sent this, not which moderator: decisions and
                # moderator ages come through the platform adapters' own permission checks.
                return problem(
                    403,
                    "moderator events are not accepted on this webhook (set webhook.allow_moderator_events)",
                    ".".join(p for p in (prefix, "type") if p),
                    index=index,
                )
            events.append(event)
        return await self._store(events, source)

    def _check_headers(self, request: web.Request) -> web.Response | None:
        """Refuse without reading the body what cannot be signed: a missing or stale timestamp, no signature."""
        raw_ts = request.headers.get(TIMESTAMP_HEADER)
        if raw_ts is None:
            return problem(401, "missing timestamp header (unix seconds)", TIMESTAMP_HEADER)
        try:
            timestamp = int(raw_ts)
        except ValueError:
            return problem(400, "timestamp must be whole unix seconds", TIMESTAMP_HEADER)
        skew = abs(time.time() - timestamp)
        if skew > self.settings.max_skew_seconds:
            return problem(
                401,
                f"timestamp is {int(skew)} s away from now; allowed {self.settings.max_skew_seconds} s (check the clock, do not replay)",
                TIMESTAMP_HEADER,
            )
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given.startswith("sha256="):
            return problem(401, "missing or malformed signature; expected sha256=<hex>", SIGNATURE_HEADER)
        return None

    def _check_signature(self, request: web.Request, body: bytes) -> web.Response | None:
        given = request.headers.get(SIGNATURE_HEADER, "")
        raw_ts = request.headers.get(TIMESTAMP_HEADER, "")
        assert self._secret is not None
        expected = sign(self._secret.decode(), raw_ts, body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return problem(401, "signature does not match the body and timestamp", SIGNATURE_HEADER)
        return None

    async def _store(self, events: list[BaseEvent], source: str) -> web.Response:
        engine = self._engine
        if engine is None:
            return problem(503, "not started", None)
        keys = [e.key for e in events]
        known = await engine.known_bodies(keys)
        seen: dict[str, str] = {}
        duplicate_ids = []
        conflicting_ids = []
        for event in events:
            body = dump_event(event)
            earlier = known.get(event.key, seen.get(event.key))
            if earlier is not None:
                # Same id, other content: not a resend but a sender bug or a forgery; say so, never "duplicate".
                same = earlier == body or same_event(earlier, event)
                (duplicate_ids if same else conflicting_ids).append(event.event_id)
            seen.setdefault(event.key, body)
        try:
            fresh = await engine.ingest(events)
        except Exception:
            log.exception("webhook: could not store %d events from %s; asked the sender to retry", len(events), source)
            return problem(503, "events were not stored; retry later", None, retry_after_s=5)
        duplicates = len(events) - fresh - len(conflicting_ids)
        log.info("webhook: %d events from %s, %d new, %d duplicate", len(events), source, fresh, duplicates)
        answer = {"accepted": fresh, "duplicates": duplicates, "duplicate_ids": duplicate_ids[:100]}
        if conflicting_ids:
            engine.reject("webhook_conflict", len(conflicting_ids))
            log.warning(
                "webhook: %d events from %s reuse a stored event_id with different content; kept the first",
                len(conflicting_ids),
                source,
            )
            answer |= {
                "conflicts": len(conflicting_ids),
                "conflicting_ids": conflicting_ids[:100],
                "error": "event_id already stored with different content; the stored event was kept",
            }
            return web.json_response(answer, status=409)
        return web.json_response(answer, status=200)


def _sender(payload: Any) -> str:
    """Who sent an authenticated body, for its rate limit: the platform(s) its events name."""
    items = payload if isinstance(payload, list) else [payload]
    platforms = sorted({str(i["platform"])[:32] for i in items[:MAX_BATCH] if isinstance(i, dict) and "platform" in i})
    return ",".join(platforms[:4]) or "signed"


def _speaks_for_a_moderator(event: BaseEvent) -> bool:
    """Events that carry a moderator's authority: decisions on cases and moderator-set ages."""
    return isinstance(event, ModeratorDecision) or (
        isinstance(event, AgeDeclared) and event.source is AgeSource.MODERATOR
    )
