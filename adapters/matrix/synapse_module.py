"""Synapse module: reports every invite on a homeserver, and how it was answered, to GroomGuard.

Install it by putting the GroomGuard checkout (or package) on Synapse's PYTHONPATH and adding
to homeserver.yaml::

    modules:
      - module: groomguard.adapters.matrix.synapse_module.GroomGuardModule
        config:
          webhook_url: http://127.0.0.1:8787/events   # GroomGuard's webhook ingest
          secret: <shared HMAC secret>
          community: my-homeserver
          queue_size: 10000                           # optional
          spool_path: /data/groomguard-spool.jsonl    # optional; where undelivered invites wait

It never blocks or slows the homeserver: the Synapse callback only appends to a bounded
in-memory queue (dropping and counting when full), and a background loop posts batches
from Synapse's thread pool with a short timeout.

It never loses an invite it has read from that queue: when GroomGuard does not take a batch
(401 or 403 — the secret or URL is wrong —, 404, 5xx, a timeout, a refused connection) the
batch is appended to `spool_path` (fsynced JSON Lines) and retried with back-off, oldest first,
until it is delivered, across Synapse restarts. Each failure is logged at ERROR with the status,
the spool size and what to check. Only a batch GroomGuard calls invalid (400, 413, 422) is
not retried: it goes to `<spool_path>.rejected` for an operator to look at, also at ERROR.
Self-contained on purpose (stdlib only): Synapse's virtualenv has none of GroomGuard's
dependencies, and the module must import nothing from Synapse at import time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

logger = logging.getLogger(__name__)

PLATFORM = "matrix"
TIMESTAMP_HEADER = "X-GroomGuard-Timestamp"
SIGNATURE_HEADER = "X-GroomGuard-Signature"

#: HTTP statuses that mean GroomGuard read the batch and called it invalid: retrying cannot help.
#: Everything else (401/403 wrong secret, 404 wrong URL, 5xx, timeouts) is spooled and retried.
_REFUSED_STATUSES = frozenset({400, 413, 422})
#: Default spool file, relative to Synapse's working directory (its data directory in the usual images).
DEFAULT_SPOOL = "groomguard-spool.jsonl"


class ModuleApiLike(Protocol):
    """The parts of `synapse.module_api.ModuleApi` this module uses."""

    def register_third_party_rules_callbacks(self, *, on_new_event: Any = ...) -> None: ...

    def looping_background_call(
        self,
        f: Any,
        msec: float,
        *args: object,
        desc: str | None = ...,
        run_on_all_instances: bool = ...,
        **kwargs: object,
    ) -> None: ...

    async def defer_to_thread(self, f: Any, *args: Any, **kwargs: Any) -> Any: ...

    def run_db_interaction(self, desc: str, func: Any, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ModuleConfig:
    """Validated module settings from homeserver.yaml."""

    webhook_url: str
    secret: str
    community: str
    queue_size: int = 10_000
    batch_size: int = 200
    timeout_s: float = 3.0
    flush_interval_ms: int = 250
    max_backoff_s: float = 60.0
    remembered_invites: int = 100_000
    spool_path: str = DEFAULT_SPOOL

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModuleConfig:
        """Check types and ranges; raise ValueError with the offending key."""
        if not isinstance(raw, dict):
            raise ValueError("config must be a mapping")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for key in ("webhook_url", "secret", "community"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ValueError(f"{key} is required and must be a non-empty string")
        if not raw["webhook_url"].startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        values: dict[str, Any] = {k: raw[k].strip() for k in ("webhook_url", "secret", "community")}
        if "spool_path" in raw:
            if not isinstance(raw["spool_path"], str) or not raw["spool_path"].strip():
                raise ValueError("spool_path must be a non-empty file path")
            values["spool_path"] = raw["spool_path"].strip()
        numeric = {
            "queue_size": (int, 1, 10_000_000),
            "batch_size": (int, 1, 10_000),
            "timeout_s": (float, 0.1, 60.0),
            "flush_interval_ms": (int, 10, 60_000),
            "max_backoff_s": (float, 0.1, 3_600.0),
            "remembered_invites": (int, 0, 10_000_000),
        }
        for key, (kind, low, high) in numeric.items():
            if key not in raw:
                continue
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if kind is int and value != int(value):
                raise ValueError(f"{key} must be a whole number")
            if not low <= value <= high:
                raise ValueError(f"{key} must be between {low} and {high}")
            values[key] = kind(value)
        return cls(**values)


@dataclass(frozen=True)
class MembershipChange:
    """The few fields of an `m.room.member` event that can start or answer an invite."""

    event_id: str
    room_id: str
    sender: str
    target: str
    membership: str
    origin_server_ts: int
    is_direct: bool = False
    replaces_state: str | None = None
    prev_membership: str | None = None
    prev_sender: str | None = None


def membership_change(event: Any) -> MembershipChange | None:
    """Pick out invites and possible invite answers; None for every other event.

    Cheap and side-effect free: it runs inside Synapse's event notification path.
    """
    if getattr(event, "type", None) != "m.room.member":
        return None
    target = getattr(event, "state_key", None)
    content = getattr(event, "content", None) or {}
    membership = content.get("membership")
    if not isinstance(target, str) or not isinstance(membership, str):
        return None
    unsigned = getattr(event, "unsigned", None) or {}
    prev_content = unsigned.get("prev_content")
    prev_membership = prev_content.get("membership") if isinstance(prev_content, dict) else None
    if membership != "invite":
        # Only the invitee joining or leaving after an invite answers it; a leave sent by
        # someone else is the inviter withdrawing it or a kick.
        if membership not in ("join", "leave") or event.sender != target:
            return None
        if prev_membership is not None and prev_membership != "invite":
            return None
        if prev_membership is None and not unsigned.get("replaces_state"):
            return None  # first membership event for this user in this room
    replaces_state = unsigned.get("replaces_state")
    prev_sender = unsigned.get("prev_sender")
    return MembershipChange(
        event_id=str(event.event_id),
        room_id=str(event.room_id),
        sender=str(event.sender),
        target=target,
        membership=membership,
        origin_server_ts=int(getattr(event, "origin_server_ts", 0) or 0),
        is_direct=content.get("is_direct") is True,
        replaces_state=replaces_state if isinstance(replaces_state, str) else None,
        prev_membership=prev_membership,
        prev_sender=prev_sender if isinstance(prev_sender, str) else None,
    )


def request_id(room_id: str, invitee: str) -> str:
    """The id tying a Matrix invite to its answer: one pending invite per room and invitee."""
    return f"{room_id}|{invitee}"


def _iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else datetime.now(UTC)
    return when.isoformat().replace("+00:00", "Z")


def to_event(change: MembershipChange, community: str, inviter: str | None = None) -> dict[str, Any] | None:
    """GroomGuard event JSON for an invite or its answer; `inviter` comes from the invite."""
    common = {
        "event_id": change.event_id,
        "platform": PLATFORM,
        "community": community,
        "at": _iso(change.origin_server_ts),
        "request_id": request_id(change.room_id, change.target),
    }
    if change.membership == "invite":
        return {
            "type": "contact_requested",
            **common,
            "source": change.sender,
            "target": change.target,
            "kind": "dm" if change.is_direct else "invite",
        }
    if inviter is None:
        return None
    return {
        "type": "contact_answered",
        **common,
        "source": inviter,
        "target": change.target,
        "answer": "accepted" if change.membership == "join" else "rejected",
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` HMAC of "<timestamp>." + body, as the webhook ingest checks it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookRefused(Exception):
    """GroomGuard answered with a status that retrying will not fix."""


class Spool:
    """Undelivered events on local disk, oldest first: an append-only JSON Lines file plus the byte
    offset up to which they were delivered (in `<path>.offset`).

    Appends are fsynced before the batch leaves memory. The offset moves only after GroomGuard
    took a batch, so a crash in between re-sends it, which GroomGuard dedupes by event id. When
    everything is delivered both files are emptied. Used from one thread at a time (the flush).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset_path = path + ".offset"
        self.rejected_path = path + ".rejected"
        self.count = self._count()

    def _offset(self) -> int:
        try:
            with open(self.offset_path, encoding="utf-8") as handle:
                return int(handle.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _count(self) -> int:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset())
                return sum(1 for line in handle if line.strip())
        except OSError:
            return 0

    def append(self, events: list[dict[str, Any]], path: str | None = None) -> None:
        data = "".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n" for e in events)
        with open(path or self.path, "a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path is None:
            self.count += len(events)

    def head(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` of the oldest undelivered events and the offset just past them."""
        out: list[dict[str, Any]] = []
        offset = self._offset()
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                while len(out) < limit:
                    line = handle.readline()
                    if not line:
                        break
                    offset += len(line)
                    if line.strip():
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            logger.error("GroomGuard spool %s: skipped an unreadable line", self.path)
        except OSError:
            return [], offset
        return out, offset

    def delivered(self, offset: int, count: int) -> None:
        """Record that everything before `offset` reached GroomGuard."""
        self.count = max(0, self.count - count)
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        if offset >= size:
            with open(self.path, "w", encoding="utf-8"):
                pass
            offset, self.count = 0, 0
        tmp = self.offset_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.offset_path)


class GroomGuardModule:
    """Loaded by Synapse from `modules:`; see the module docstring for the config."""

    def __init__(self, config: ModuleConfig, api: ModuleApiLike) -> None:
        self._config = config
        self._api = api
        self._queue: deque[MembershipChange] = deque()
        # invite event id -> inviter, so answers resolve without a database read.
        self._invites: OrderedDict[str, str] = OrderedDict()
        self._sending = False
        self._failures = 0
        self._next_attempt = 0.0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._spool = Spool(config.spool_path)
        self.dropped = 0
        self.sent = 0
        self.refused = 0
        api.register_third_party_rules_callbacks(on_new_event=self.on_new_event)
        # On every instance: the queue lives in whichever process persisted the event.
        api.looping_background_call(
            self.flush, config.flush_interval_ms, desc="groomguard_flush", run_on_all_instances=True
        )
        logger.info("GroomGuard module reporting invites to %s", config.webhook_url)
        if self._spool.count:
            logger.warning(
                "GroomGuard: %d undelivered invite events in %s from before; sending them first",
                self._spool.count,
                config.spool_path,
            )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> ModuleConfig:
        """Validate the `config:` block from homeserver.yaml (Synapse calls this first)."""
        return ModuleConfig.from_dict(config)

    async def on_new_event(self, event: Any, state_events: Any) -> None:
        """Synapse calls this for every new event; enqueue invite-related ones, never wait."""
        try:
            change = membership_change(event)
        except Exception:  # a malformed event must never break Synapse's notifier
            logger.exception("GroomGuard: skipped an event it could not read")
            return
        if change is not None:
            self.enqueue(change)

    def enqueue(self, change: MembershipChange) -> None:
        """Add to the bounded queue; when it is full drop the change and count it."""
        if len(self._queue) >= self._config.queue_size:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("GroomGuard queue full: %d invite events dropped", self.dropped)
            return
        self._queue.append(change)

    @property
    def pending(self) -> int:
        """Changes and events not yet delivered (in memory and in the spool)."""
        return len(self._queue) + self._spool.count

    @property
    def spooled(self) -> int:
        return self._spool.count

    async def flush(self) -> None:
        """Post one batch; run by Synapse's looping background call.

        While the spool holds anything, or GroomGuard is being waited for, new events go to the end
        of the spool and batches are sent from its head, so order is kept and memory stays small.
        """
        if self._sending:
            return
        self._sending = True
        try:
            waiting = time.monotonic() < self._next_attempt
            fresh = await self._drain(everything=waiting or self._spool.count > 0)
            if fresh and (waiting or self._spool.count):
                await self._api.defer_to_thread(self._spool.append, fresh)
                fresh = []
            if waiting:
                return
            offset: int | None = None
            if fresh:
                batch = fresh
            else:
                batch, offset = await self._api.defer_to_thread(self._spool.head, self._config.batch_size)
            if not batch:
                return
            await self._send(batch, offset)
        finally:
            self._sending = False

    async def _send(self, batch: list[dict[str, Any]], offset: int | None) -> None:
        """Post `batch` (read from the spool up to `offset`, or fresh when None) and settle the outcome."""
        try:
            try:
                await self._api.defer_to_thread(self._post, batch)
            except urllib.error.HTTPError as err:
                if err.code in _REFUSED_STATUSES:
                    raise WebhookRefused(f"HTTP {err.code}") from err
                raise
        except WebhookRefused as err:
            self.refused += len(batch)
            await self._api.defer_to_thread(self._spool.append, batch, self._spool.rejected_path)
            if offset is not None:
                await self._api.defer_to_thread(self._spool.delivered, offset, len(batch))
            logger.error(
                "GroomGuard called %d invite events invalid (%s); not retrying them, kept in %s",
                len(batch),
                err,
                self._spool.rejected_path,
            )
        except Exception as err:
            if offset is None:
                await self._api.defer_to_thread(self._spool.append, batch)
            self._failures += 1
            delay = min(self._config.max_backoff_s, 0.5 * 2 ** (self._failures - 1))
            self._next_attempt = time.monotonic() + delay
            logger.error(
                "GroomGuard webhook unavailable (%s): %d invite events spooled in %s, retry in %.1fs%s",
                err,
                self.pending,
                self._config.spool_path,
                delay,
                _hint(err),
            )
        else:
            if offset is not None:
                await self._api.defer_to_thread(self._spool.delivered, offset, len(batch))
            if self._failures:
                logger.warning("GroomGuard webhook reachable again; %d events still spooled", self._spool.count)
            self.sent += len(batch)
            self._failures = 0

    async def _drain(self, everything: bool) -> list[dict[str, Any]]:
        """Events from the memory queue: one batch, or (while spooling) all of it."""
        out = await self._next_batch()
        while everything and self._queue:
            out.extend(await self._next_batch())
        return out

    async def _next_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        while self._queue and len(batch) < self._config.batch_size:
            change = self._queue.popleft()
            inviter = None
            if change.membership == "invite":
                self._remember(change.event_id, change.sender)
            else:
                inviter = await self._inviter_for(change)
            event = to_event(change, self._config.community, inviter)
            if event is not None:
                batch.append(event)
        return batch

    def _remember(self, invite_event_id: str, inviter: str) -> None:
        if self._config.remembered_invites <= 0:
            return
        self._invites[invite_event_id] = inviter
        while len(self._invites) > self._config.remembered_invites:
            self._invites.popitem(last=False)

    async def _inviter_for(self, change: MembershipChange) -> str | None:
        """Who sent the invite this join/leave answers, or None if it answers no invite."""
        if change.prev_membership == "invite" and change.prev_sender:
            return change.prev_sender
        if not change.replaces_state:
            return None
        known = self._invites.pop(change.replaces_state, None)
        if known is not None:
            return known
        # Not seen since start-up (or forgotten): ask the database, off the notifier path.
        try:
            row = await self._api.run_db_interaction(
                "groomguard_prev_membership", _select_membership, change.replaces_state
            )
        except Exception:
            logger.exception("GroomGuard: could not look up %s", change.replaces_state)
            return None
        if row is None or row[1] != "invite":
            return None
        return str(row[0])

    def _post(self, batch: list[dict[str, Any]]) -> None:
        """Blocking HTTP POST; runs in Synapse's thread pool, never on the reactor."""
        body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            self._config.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self._config.secret, timestamp, body),
            },
        )
        with self._opener.open(request, timeout=self._config.timeout_s) as reply:
            reply.read(1024)


def _hint(error: Exception) -> str:
    """What an operator should check for this failure (appended to the ERROR line)."""
    code = getattr(error, "code", None)
    if code in (401, 403):
        return " — GroomGuard refused the signature: `secret` must equal GroomGuard's webhook secret (check clocks too)"
    if code == 404:
        return " — nothing at that address: `webhook_url` must end in /events"
    if isinstance(code, int) and code >= 500:
        return " — GroomGuard could not store the events; see its log"
    return " — is GroomGuard running and `webhook_url` right? (`groomguard doctor` checks it)"


def _select_membership(txn: Any, event_id: str) -> tuple[str, str] | None:
    txn.execute("SELECT sender, membership FROM room_memberships WHERE event_id = ?", (event_id,))
    row = txn.fetchone()
    return (row[0], row[1]) if row else None
