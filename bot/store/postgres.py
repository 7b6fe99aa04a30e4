"""PostgreSQL store through asyncpg: the SqliteStore contract, shared safely by several engine processes.

How several engines share one database (one per Discord shard, or a webhook beside a bot):

* Every engine **stores**: inserts are idempotent (`ON CONFLICT (key) DO NOTHING`), `seq` comes from a
  PostgreSQL sequence, and appends take a transaction-scoped advisory lock so that commit order equals
  seq order (a reader never sees seq 7 before seq 6 is committed, so no event can slip under a watermark).
* Every engine **processes a share**: communities hash to partitions and each engine leases a fair share
  of them (groomguard.store.partitions). A community's detector state and cases live in the memory of the
  one engine holding its partition, so "one case per suspect, one alert per case" holds without
  distributed state. `append_events` returns every committed event of the held partitions past what was
  processed, the engine's own and the other engines', in seq order; `LogFollower` polls so events stored
  by the others are processed even when this engine is idle, and runs the lease rounds: a dead engine's
  partitions are taken over by the others in-process once its leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from groomguard.actions import Action
from groomguard.cases import Case
from groomguard.events import AgeBand, BaseEvent, parse_event
from groomguard.memory import MemoryRow
from groomguard.privacy import mentions, needles, scrub
from groomguard.records import Account, ContactEdge, RequestRecord, Turn
from groomguard.storage import ActionT, BatchWrite, Snapshot
from groomguard.store.db import PostgresDatabase
from groomguard.store.partitions import DEFAULT_PARTITIONS, Partitions, partition_of
from pydantic import TypeAdapter

log = logging.getLogger(__name__)
#: `meta` rows holding one-time web sign-in links, by token digest.
WEB_LINK = "web_link:"
T = TypeVar("T")

ACTION_ADAPTER: TypeAdapter[ActionT] = TypeAdapter(Action)
#: Advisory lock keys (arbitrary constants, "GG" + purpose) shared by every engine on the database.
APPEND_LOCK = 0x4747_0002
MIGRATION_LOCK = 0x4747_0003
#: Most events one append hands the engine; a longer backlog is handed by LogFollower's next polls. Kept
#: small enough that one batch never holds the event loop near a lease's length.
MAX_HANDED = 5_000


def migrations() -> list[tuple[int, str]]:
    """Numbered SQL files in bot/store/migrations_pg, in order (same numbers as the SQLite ones)."""
    files = resources.files("groomguard.store") / "migrations_pg"
    found = []
    for item in files.iterdir():
        if item.name.endswith(".sql") and item.name[:3].isdigit():
            found.append((int(item.name[:3]), item.read_text(encoding="utf-8")))
    return sorted(found)


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _t(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; SQLite can. Replace it so hostile text cannot stop the engine.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(_t(v) for v in row) for row in rows]


def _n(status: str) -> int:
    """Row count from an asyncpg status string such as 'DELETE 3'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _first(row: Any) -> str:
    return str(row[0])


def _subject(action: ActionT) -> str:
    return getattr(action, "suspect", None) or getattr(action, "child", "")


def _serialized(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a store method under the store's lock: one asyncpg connection allows one operation at a time,
    and the engine's batch worker, outbox dispatcher and webhook ingest call the store concurrently."""

    @functools.wraps(method)
    async def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> T:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper


class PostgresStoreError(RuntimeError):
    """The database cannot be used; the message names the server (never the password)."""


class PostgresStore:
    """The shared store: one asyncpg connection per engine, and one more for its partition leases."""

    #: What groomguard.follower.LogFollower retries after: the server went away or restarted.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
    )

    def __init__(
        self, url: str, partitions: int = DEFAULT_PARTITIONS, lease_s: float = 8.0, *, process: bool = True
    ) -> None:
        self.url = url
        self._db: asyncpg.Connection | None = None
        #: The partitions this engine leases and what it handed out of them; `process=False` stores only.
        self.partitions = Partitions(url, partitions, lease_s, process=process)
        self._lock = asyncio.Lock()

    @property
    def leader(self) -> bool:
        """Whether this engine holds at least one partition (processes anything)."""
        return bool(self.partitions.held)

    @property
    def db(self) -> asyncpg.Connection:
        if self._db is None:
            raise PostgresStoreError("store is not open")
        return self._db

    @_serialized
    async def open(self) -> None:
        try:
            self._db = await asyncpg.connect(self.url)
            await self._migrate()
            await self.partitions.setup(self.db)
            await self.partitions.start()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self._close()
            raise PostgresStoreError(f"cannot open database {redact(self.url)}: {error}") from error
        except BaseException:
            await self._close()
            raise
        log.info(
            "postgres store open: partitions %s of %d leased to %s",
            sorted(self.partitions.held),
            self.partitions.count,
            self.partitions.owner,
        )

    async def _migrate(self) -> None:
        db = self.db
        async with db.transaction():
            # Two engines starting together must not both apply a migration.
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            for version, sql in migrations():
                if version <= current:
                    continue
                log.info("applying postgres migration %03d", version)
                await db.execute(sql)
                await db.execute("INSERT INTO schema_version VALUES ($1, $2)", version, datetime.now(UTC).isoformat())

    async def check(self) -> tuple[int, int]:
        """(schema version, latest known) after proving the database accepts a write; for `groomguard doctor`."""
        db = await asyncpg.connect(self.url)
        try:
            exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            current = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")) if exists else 0
            async with db.transaction():
                await db.execute("CREATE TEMP TABLE groomguard_doctor (x INTEGER) ON COMMIT DROP")
                await db.execute("INSERT INTO groomguard_doctor VALUES (1)")
        finally:
            await db.close()
        return current, max((v for v, _ in migrations()), default=0)

    @_serialized
    async def close(self) -> None:
        await self._close()

    async def _close(self) -> None:
        await self.partitions.close()
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()
            self._db = None

    # -- event log ------------------------------------------------------------------------

    @_serialized
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before; get back what is now due in the held partitions, in seq order."""
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        if unique:
            now = datetime.now(UTC).isoformat()
            count = self.partitions.count
            rows = _rows(
                (e.key, e.type, e.community, e.at.isoformat(), now, e.model_dump_json())  # type: ignore[attr-defined]
                for e in unique.values()
            )
            parts = [partition_of(e.community, count) for e in unique.values()]
            async with self.db.transaction():
                await self.db.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                await self.db.fetch(
                    "INSERT INTO events (key, type, community, at, stored_at, body, part) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
                    "$7::int[]) ON CONFLICT (key) DO NOTHING",
                    *map(list, zip(*rows, strict=True)),
                    parts,
                )
        return await self.partitions.due(self.db, MAX_HANDED)

    @_serialized
    async def take_due(self, limit: int) -> list[tuple[int, BaseEvent]]:
        """Events of the held partitions stored past what was handed (by any engine), in seq order."""
        return await self.partitions.due(self.db, limit)

    @_serialized
    async def rebalance(self) -> bool:
        """One lease round (release beyond the fair share, take free partitions); True when the held set changed.

        Only between batches: the engine runs it under its writer lock (`Engine.rebalance`).
        """
        return await self.partitions.rebalance()

    @property
    def rebalance_every_s(self) -> float:
        """How often LogFollower should run a lease round."""
        return self.partitions.heartbeat_s

    @_serialized
    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these event keys are already stored (lets ingest name duplicates)."""
        rows = await self.db.fetch("SELECT key FROM events WHERE key = ANY($1::text[])", [_t(k) for k in keys])
        return {r[0] for r in rows}

    @_serialized
    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored bodies of these event keys, so ingest can tell a resend from a reused id."""
        rows = await self.db.fetch("SELECT key, body FROM events WHERE key = ANY($1::text[])", [_t(k) for k in keys])
        return {r[0]: r[1] for r in rows}

    @_serialized
    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events of the held partitions past each one's watermark (`seq` is the engine's, one number
        for all: each partition keeps its own here, reset at every snapshot)."""
        return await self.partitions.due(self.db, limit)

    @_serialized
    async def all_events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events past `seq` whoever processes them (for tools and tests)."""
        rows = await self.db.fetch("SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit)
        return [(int(r[0]), parse_event(r[1])) for r in rows]

    # -- state ----------------------------------------------------------------------------

    @_serialized
    async def snapshot(self, contact_window_hours: float) -> Snapshot:
        snap = Snapshot()
        # Only the held partitions' communities: this engine processes no other.
        parts = self.partitions
        marks = await parts.watermarks(self.db)
        snap.watermark = max((m for m, _ in marks.values()), default=0)
        snap.watermark_at = max((_dt(at) for _, at in marks.values() if at), default=None)
        snap.case_ids = await parts.case_ids(self.db)
        regions: dict[tuple[str, str], set[str]] = {}
        for row in parts.keep(await self.db.fetch("SELECT community, account, region FROM regions"), _first):
            regions.setdefault((row[0], row[1]), set()).add(row[2])
        standings: dict[tuple[str, str], set[str]] = {}
        for row in parts.keep(
            await self.db.fetch("SELECT community, account, standing FROM standings WHERE held = 1"), _first
        ):
            standings.setdefault((row[0], row[1]), set()).add(row[2])
        for row in parts.keep(await self.db.fetch("SELECT * FROM accounts ORDER BY community, account"), _first):
            snap.accounts.append(
                (
                    row["community"],
                    Account(
                        row["account"],
                        AgeBand(row["band"]),
                        row["age"],
                        row["band_source"],
                        frozenset(regions.get((row["community"], row["account"]), ())),
                        _dt(row["created_at"]),
                        _dt(row["joined_at"]),
                        _dt(row["first_seen"]),
                        frozenset(standings.get((row["community"], row["account"]), ())),
                    ),
                )
            )
        if snap.watermark_at is not None:
            # A day back from the slowest community's clock: each community's own notice history.
            clocks = parts.keep(
                await self.db.fetch(
                    "SELECT community, value::json #>> '{}' FROM detector_memory WHERE detector = 'engine.clock'"
                ),
                _first,
            )
            slowest = min([snap.watermark_at, *(datetime.fromisoformat(r[1]) for r in clocks)])
            day_ago = (slowest - timedelta(days=1)).isoformat()
            rows = await self.db.fetch(
                "SELECT community, child, suspect, at, stage FROM notices WHERE at >= $1 ORDER BY at", day_ago
            )
            snap.notices = [(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4]) for r in parts.keep(rows, _first)]
        rows = await self.db.fetch("SELECT * FROM cases WHERE status IN ('open', 'escalated', 'confirmed') ORDER BY id")
        snap.cases = [Case.from_row(row) for row in parts.keep(rows, lambda r: r["community"])]
        snap.next_case_id = int(await self.db.fetchval("SELECT COALESCE(MAX(id), 0) + 1 FROM cases"))
        rows = await self.db.fetch(
            "SELECT community, suspect, SUM(dismissals) FROM cases GROUP BY community, suspect HAVING SUM(dismissals) > 0"
        )
        snap.dismissals = {(r[0], r[1]): int(r[2]) for r in parts.keep(rows, _first)}
        return snap

    @_serialized
    async def commit_batch(self, batch: BatchWrite) -> None:
        """Write one processed batch atomically: state rows, cases, findings, outbox, its partitions' watermarks.

        Refused as a whole (`StaleLease`) when a partition of the batch is no longer leased to this engine.
        """
        db, s = self.db, batch.state
        async with db.transaction():
            await self.partitions.fence(db)
            if s.accounts:
                await db.executemany(
                    "INSERT INTO accounts VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (community, account) DO UPDATE "
                    "SET band = excluded.band, age = excluded.age, band_source = excluded.band_source, "
                    "created_at = excluded.created_at, joined_at = excluded.joined_at, first_seen = excluded.first_seen",
                    _rows(
                        (
                            c,
                            a.account,
                            a.band.value,
                            a.age,
                            a.band_source,
                            _iso(a.created_at),
                            _iso(a.joined_at),
                            _iso(a.first_seen),
                        )
                        for (c, _), a in s.accounts.items()
                    ),
                )
            if s.regions:
                await db.executemany("INSERT INTO regions VALUES ($1,$2,$3) ON CONFLICT DO NOTHING", _rows(s.regions))
            if s.contacts:
                await db.executemany(
                    "INSERT INTO contacts VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING", _rows(s.contacts)
                )
            if s.requests:
                await db.executemany(
                    "INSERT INTO requests (community, source, target, request_id, kind, requested_at, event_key) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING",
                    _rows(s.requests),
                )
            if s.answers:
                await db.executemany(
                    "UPDATE requests SET status = $1, answered_at = $2 WHERE community = $3 AND source = $4 "
                    "AND target = $5 AND request_id = $6 AND status = 'pending'",
                    _rows(s.answers),
                )
            if s.accepted:
                await db.executemany(
                    "INSERT INTO accepted VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING", _rows(s.accepted)
                )
            if s.view_authors:
                await db.executemany(
                    "INSERT INTO view_authors VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                    _rows(sorted(s.view_authors)),
                )
            if s.views:
                await db.executemany(
                    "INSERT INTO views VALUES ($1,$2,$3,$4,$5) ON CONFLICT (community, viewer, hour) DO UPDATE SET "
                    "to_minors = views.to_minors + excluded.to_minors, total = views.total + excluded.total",
                    _rows((c, v, h, n[0], n[1]) for (c, v, h), n in s.views.items()),
                )
            if s.conversations:
                await db.executemany(
                    "INSERT INTO conversations VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (community, conversation) "
                    "DO UPDATE SET last_at = excluded.last_at, messages = conversations.messages + excluded.messages",
                    _rows((c, conv, int(v[0]), v[1], v[2], v[3]) for (c, conv), v in s.conversations.items()),
                )
            if s.messages:
                await db.executemany(
                    "INSERT INTO messages VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (community, message_id) DO UPDATE "
                    "SET conversation = excluded.conversation, author = excluded.author, at = excluded.at, text = excluded.text",
                    _rows(s.messages),
                )
            if s.edited_messages:
                await db.executemany(
                    "UPDATE messages SET text = $1 WHERE community = $2 AND message_id = $3", _rows(s.edited_messages)
                )
            if s.deleted_messages:
                await db.executemany(
                    "DELETE FROM messages WHERE community = $1 AND message_id = $2", _rows(s.deleted_messages)
                )
                await db.executemany(
                    "DELETE FROM message_turns WHERE community = $1 AND message_id = $2", _rows(s.deleted_messages)
                )
            if s.standings:
                await db.executemany(
                    "INSERT INTO standings VALUES ($1,$2,$3,$4,$5) ON CONFLICT (community, account, standing) "
                    "DO UPDATE SET held = excluded.held, at = excluded.at",
                    _rows(s.standings),
                )
            if s.turns:
                await db.executemany(
                    "INSERT INTO message_turns VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING", _rows(s.turns)
                )
            if batch.cases:
                await db.executemany(
                    "INSERT INTO cases VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (id) DO UPDATE SET "
                    "platform = excluded.platform, community = excluded.community, suspect = excluded.suspect, "
                    "status = excluded.status, risk = excluded.risk, risk_at = excluded.risk_at, "
                    "opened_at = excluded.opened_at, updated_at = excluded.updated_at, "
                    "alert_version = excluded.alert_version, dismissals = excluded.dismissals, "
                    "children = excluded.children, reasons = excluded.reasons",
                    _rows(
                        case.to_row(batch.clocks.get(case.community, batch.watermark_at), batch.half_life_hours)
                        for case in batch.cases
                    ),
                )
            if batch.findings:
                await db.executemany(
                    "INSERT INTO findings (case_id, detector, community, suspect, score, reason, evidence, child, at, "
                    "event_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                    _rows(
                        (
                            cid,
                            f.detector,
                            f.community,
                            f.suspect,
                            f.score,
                            f.reason,
                            json.dumps([e.model_dump(mode="json") for e in f.evidence]),
                            f.child,
                            f.at.isoformat(),
                            f.event_key,
                        )
                        for cid, f in batch.findings
                    ),
                )
            if batch.actions:
                # Deterministic action ids + DO NOTHING: a batch re-processed after a crash cannot double an alert.
                await db.executemany(
                    "INSERT INTO actions (id, kind, case_id, subject, created_at, payload) VALUES ($1,$2,$3,$4,$5,$6) "
                    "ON CONFLICT (id) DO NOTHING",
                    _rows(
                        (
                            a.action_id,
                            a.kind,
                            getattr(a, "case_id", None),
                            _subject(a),
                            a.at.isoformat(),
                            a.model_dump_json(),
                        )
                        for a in batch.actions
                    ),
                )
            if batch.notices:
                await db.executemany(
                    "INSERT INTO notices (community, child, suspect, at, stage) VALUES ($1,$2,$3,$4,$5)",
                    _rows(batch.notices),
                )
            if batch.audit:
                await db.executemany(
                    "INSERT INTO audit (at, actor, action, community, case_id, detail) VALUES ($1,$2,$3,$4,$5,$6)",
                    _rows(
                        (a.at.isoformat(), a.actor, a.action, a.community, a.case_id, json.dumps(a.detail))
                        for a in batch.audit
                    ),
                )
            if batch.memory:
                gone = _rows((r.detector, r.community, r.key) for r in batch.memory if r.value is None)
                kept = _rows(
                    (r.detector, r.community, r.key, r.value, json.dumps(r.accounts), _iso(r.expires_at))
                    for r in batch.memory
                    if r.value is not None
                )
                if gone:
                    await db.executemany(
                        "DELETE FROM detector_memory WHERE detector = $1 AND community = $2 AND key = $3", gone
                    )
                if kept:
                    await db.executemany(
                        "INSERT INTO detector_memory VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (detector, community, key) "
                        "DO UPDATE SET value = excluded.value, accounts = excluded.accounts, expires_at = excluded.expires_at",
                        kept,
                    )

    @_serialized
    async def accepted_contacts(self, community: str, account: str) -> set[str]:
        rows = await self.db.fetch("SELECT b FROM accepted WHERE community = $1 AND a = $2", _t(community), _t(account))
        return {r[0] for r in rows}

    # -- detector reads (groomguard.state.StateReader) -------------------------------------------

    @_serialized
    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]:
        """First contacts `source` started since `since`, plus its stored edges to `targets` of any age."""
        rows = await self.db.fetch(
            "SELECT target, kind, first_at, event_key FROM contacts WHERE community = $1 AND source = $2 "
            # In primary-key order, as SQLite (WITHOUT ROWID) returns them: never the heap's, which updates reorder.
            "AND (first_at >= $3 OR target = ANY($4::text[])) ORDER BY target",
            _t(community),
            _t(source),
            since.isoformat(),
            [_t(t) for t in targets],
        )
        return [ContactEdge(source, r[0], r[1], datetime.fromisoformat(r[2]), r[3]) for r in rows]

    @_serialized
    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]:
        rows = await self.db.fetch(
            "SELECT target, request_id, kind, requested_at, status, answered_at, event_key FROM requests "
            "WHERE community = $1 AND source = $2 AND requested_at >= $3 ORDER BY target, request_id",
            _t(community),
            _t(source),
            since.isoformat(),
        )
        return [RequestRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], _dt(r[5]), r[6]) for r in rows]

    @_serialized
    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]:
        rows = await self.db.fetch(
            "SELECT hour, to_minors, total FROM views WHERE community = $1 AND viewer = $2 AND hour >= $3 ORDER BY hour",
            _t(community),
            _t(viewer),
            from_hour,
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    @_serialized
    async def viewer_minor_authors(self, community: str, viewer: str, hour: int) -> set[str]:
        rows = await self.db.fetch(
            "SELECT author FROM view_authors WHERE community = $1 AND viewer = $2 AND hour = $3",
            _t(community),
            _t(viewer),
            hour,
        )
        return {r[0] for r in rows}

    @_serialized
    async def community_view_buckets(self, community: str, from_hour: int) -> list[tuple[int, int, int]]:
        rows = await self.db.fetch(
            "SELECT hour, SUM(to_minors), SUM(total) FROM views WHERE community = $1 AND hour >= $2 GROUP BY hour",
            _t(community),
            from_hour,
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    @_serialized
    async def accepted_degree(self, community: str, account: str) -> int:
        """How many accounts `account` has accepted contact with (the hub rule's degree)."""
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM accepted WHERE community = $1 AND a = $2", _t(community), _t(account)
        )
        return int(value or 0)

    @_serialized
    async def message_author(self, community: str, message_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT author FROM message_turns WHERE community = $1 AND message_id = $2",
            _t(community),
            _t(message_id),
        )
        return str(value) if value is not None else None

    @_serialized
    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        """The newest `limit` group messages in `conversation` since `since`, oldest first."""
        rows = await self.db.fetch(
            "SELECT author, at, message_id FROM message_turns WHERE community = $1 AND conversation = $2 "
            "AND at >= $3 ORDER BY at DESC LIMIT $4",
            _t(community),
            _t(conversation),
            since.isoformat(),
            limit,
        )
        return [Turn(r[0], datetime.fromisoformat(r[1]), r[2]) for r in reversed(rows)]

    # -- outbox ---------------------------------------------------------------------------

    @_serialized
    async def pending_actions(self) -> list[ActionT]:
        """Undelivered actions of the held partitions: each engine delivers its own communities' only."""
        if not self.leader:
            return []
        rows = await self.db.fetch("SELECT payload FROM actions WHERE delivered_at IS NULL ORDER BY created_at, id")
        actions = [ACTION_ADAPTER.validate_json(r[0]) for r in rows]
        return self.partitions.keep(actions, lambda a: a.community)

    @_serialized
    async def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        if action_ids:
            await self.db.execute(
                "UPDATE actions SET delivered_at = $1 WHERE id = ANY($2::text[])", at.isoformat(), list(action_ids)
            )

    # -- cases and audit ------------------------------------------------------------------

    @_serialized
    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT id, platform, community, suspect, status, risk, opened_at, updated_at, alert_version FROM cases"
        if status:
            rows = await self.db.fetch(sql + " WHERE status = $1 ORDER BY risk DESC, id LIMIT $2", status, limit)
        else:
            rows = await self.db.fetch(sql + " ORDER BY risk DESC, id LIMIT $1", limit)
        return [dict(r) for r in rows]

    @_serialized
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None:
        row = await self.db.fetchrow("SELECT * FROM cases WHERE id = $1", case_id)
        if row is None:
            return None
        findings = await self.db.fetch(
            "SELECT detector, score, reason, evidence, child, at FROM findings WHERE case_id = $1 ORDER BY id", case_id
        )
        audit = await self.db.fetch(
            "SELECT at, actor, action, detail FROM audit WHERE case_id = $1 ORDER BY id", case_id
        )
        return Case.from_row(row), [dict(r) for r in findings], [dict(r) for r in audit]

    @_serialized
    async def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        detail: dict[str, Any],
        community: str | None = None,
        case_id: int | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO audit (at, actor, action, community, case_id, detail) VALUES ($1,$2,$3,$4,$5,$6)",
            *_rows([(at.isoformat(), actor, action, community, case_id, json.dumps(detail))])[0],
        )

    # -- one-time sign-in links of the web case view (groomguard.app.web) ---------------------------

    @_serialized
    async def put_web_link(self, digest: str, moderator: str, expires_at: datetime) -> None:
        """Keep a one-time link by the SHA-256 of its token (the token itself is never stored)."""
        await self.db.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2)",
            WEB_LINK + digest,
            json.dumps({"moderator": moderator, "expires_at": expires_at.isoformat()}),
        )

    @_serialized
    async def take_web_link(self, digest: str, now: datetime) -> str | None:
        """Use a link once: delete it and return its moderator, or None (unknown, used or expired)."""
        value = await self.db.fetchval("DELETE FROM meta WHERE name = $1 RETURNING value", WEB_LINK + digest)
        rows = await self.db.fetch("SELECT name, value FROM meta WHERE starts_with(name, $1)", WEB_LINK)
        stale = [r["name"] for r in rows if datetime.fromisoformat(json.loads(r["value"])["expires_at"]) <= now]
        if stale:
            await self.db.execute("DELETE FROM meta WHERE name = ANY($1::text[])", stale)
        if value is None:
            return None
        link = json.loads(value)
        return str(link["moderator"]) if datetime.fromisoformat(link["expires_at"]) > now else None

    # -- privacy --------------------------------------------------------------------------

    @_serialized
    async def forget(self, account: str, community: str | None = None) -> dict[str, int]:
        """Erase one account's data everywhere it is stored; returns rows removed per table."""
        account = _t(account)
        scope = "community = $2 AND " if community else ""
        args: tuple[Any, ...] = (account, _t(community)) if community else (account,)
        body = "body::json"
        statements = {
            "events": f"DELETE FROM events WHERE {scope}({body}->>'account' = $1 OR {body}->>'source' = $1 "
            f"OR {body}->>'target' = $1 OR {body}->>'author' = $1 OR {body}->>'viewer' = $1 "
            f"OR {body}->>'moderator' = $1 OR {body}->>'reply_to_author' = $1 "
            f"OR EXISTS (SELECT 1 FROM json_array_elements_text("
            f"CASE WHEN json_typeof({body}->'recipients') = 'array' THEN {body}->'recipients' ELSE '[]'::json END"
            ") AS r(v) WHERE r.v = $1) OR EXISTS (SELECT 1 FROM json_array_elements_text("
            f"CASE WHEN json_typeof({body}->'mentions') = 'array' THEN {body}->'mentions' ELSE '[]'::json END"
            ") AS m(v) WHERE m.v = $1))",
            "accounts": f"DELETE FROM accounts WHERE {scope}account = $1",
            "regions": f"DELETE FROM regions WHERE {scope}account = $1",
            "contacts": f"DELETE FROM contacts WHERE {scope}(source = $1 OR target = $1)",
            "requests": f"DELETE FROM requests WHERE {scope}(source = $1 OR target = $1)",
            "accepted": f"DELETE FROM accepted WHERE {scope}(a = $1 OR b = $1)",
            "views": f"DELETE FROM views WHERE {scope}viewer = $1",
            "view_authors": f"DELETE FROM view_authors WHERE {scope}(viewer = $1 OR author = $1)",
            "messages": f"DELETE FROM messages WHERE {scope}author = $1",
            "standings": f"DELETE FROM standings WHERE {scope}account = $1",
            "message_turns": f"DELETE FROM message_turns WHERE {scope}author = $1",
            "notices": f"DELETE FROM notices WHERE {scope}(child = $1 OR suspect = $1)",
            "findings": f"DELETE FROM findings WHERE {scope}(suspect = $1 OR child = $1)",
            "cases": f"DELETE FROM cases WHERE {scope}suspect = $1",
            "detector_memory": f"DELETE FROM detector_memory WHERE {scope}(key = $1 OR EXISTS "
            "(SELECT 1 FROM json_array_elements_text(accounts::json) AS m(v) WHERE m.v = $1))",
        }
        removed: dict[str, int] = {}
        async with self.db.transaction():
            case_ids = [r[0] for r in await self.db.fetch(f"SELECT id FROM cases WHERE {scope}suspect = $1", *args)]
            if case_ids:
                removed["findings"] = _n(
                    await self.db.execute("DELETE FROM findings WHERE case_id = ANY($1)", case_ids)
                )
                removed["actions"] = _n(await self.db.execute("DELETE FROM actions WHERE case_id = ANY($1)", case_ids))
            for sql in statements.values():
                table = sql.split()[2]
                removed[table] = removed.get(table, 0) + _n(await self.db.execute(sql, *args))
            # Anything else naming the account as a JSON string (same as the SQLite store): outbox
            # payloads, other suspects' case and finding evidence, audit details.
            token = json.dumps(account)
            if community:
                removed["actions"] = removed.get("actions", 0) + _n(
                    await self.db.execute(
                        "DELETE FROM actions WHERE payload::json->>'community' = $3 AND (subject = $1 OR strpos(payload, $2) > 0)",
                        account,
                        token,
                        _t(community),
                    )
                )
            else:
                removed["actions"] = removed.get("actions", 0) + _n(
                    await self.db.execute(
                        "DELETE FROM actions WHERE subject = $1 OR strpos(payload, $2) > 0", account, token
                    )
                )
            tscope = "community = $2 AND " if community else ""
            targs: tuple[Any, ...] = (token, _t(community)) if community else (token,)
            for row in await self.db.fetch(
                f"SELECT id, children, reasons FROM cases WHERE {tscope}(strpos(children, $1) > 0 OR strpos(reasons, $1) > 0)",
                *targs,
            ):
                kids = [k for k in json.loads(row[1]) if k != account]
                extra = json.loads(row[2])
                for reason in extra.get("reasons", {}).values():
                    reason["evidence"] = [e for e in reason.get("evidence", []) if e.get("ref") != account]
                await self.db.execute(
                    "UPDATE cases SET children = $1, reasons = $2 WHERE id = $3",
                    json.dumps(kids),
                    json.dumps(extra),
                    row[0],
                )
            for row in await self.db.fetch(
                f"SELECT id, evidence FROM findings WHERE {tscope}strpos(evidence, $1) > 0", *targs
            ):
                kept = [e for e in json.loads(row[1]) if e.get("ref") != account]
                await self.db.execute("UPDATE findings SET evidence = $1 WHERE id = $2", json.dumps(kept), row[0])
            removed["audit (redacted)"] = _n(
                await self.db.execute(
                    f"""UPDATE audit SET detail = '{{"redacted": true}}' WHERE {tscope}strpos(detail, $1) > 0""", *targs
                )
            )
            for table, n in (await self._sweep(account, community)).items():
                removed[table] = removed.get(table, 0) + n
            await self.db.execute(
                "INSERT INTO audit (at, actor, action, community, detail) VALUES ($1,$2,$3,$4,$5)",
                datetime.now(UTC).isoformat(),
                "groomguard",
                "forget",
                _t(community),
                json.dumps({"rows": sum(removed.values())}),
            )
        return {k: v for k, v in removed.items() if v}

    # -- detector memory (groomguard.memory.MemoryReader) ---------------------------------------

    @_serialized
    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None:
        row = await self.db.fetchrow(
            "SELECT value, accounts, expires_at FROM detector_memory WHERE detector = $1 AND community = $2 AND key = $3",
            _t(detector),
            _t(community),
            _t(key),
        )
        if row is None:
            return None
        return MemoryRow(detector, community, key, row[0], tuple(json.loads(row[1])), _dt(row[2]))

    @_serialized
    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]:
        rows = await self.db.fetch(
            "SELECT detector, community, key, value, accounts, expires_at FROM detector_memory "
            "WHERE left(detector, $1) = $2 ORDER BY detector, community, key",
            len(detector_prefix),
            _t(detector_prefix),
        )
        rows = self.partitions.keep(rows, lambda r: r[1])
        return [MemoryRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), _dt(r[5])) for r in rows]

    @_serialized
    async def purge_memory(self, before: datetime) -> int:
        """Delete memory rows that expired before `before` (they are already hidden from detectors)."""
        return _n(
            await self.db.execute(
                "DELETE FROM detector_memory WHERE expires_at IS NOT NULL AND expires_at < $1", before.isoformat()
            )
        )

    async def _sweep(self, account: str, community: str | None) -> dict[str, int]:
        """Find the id in every column of every table and remove it (the SQLite store's `_sweep`, on PostgreSQL).

        Rows are removed logically; PostgreSQL keeps dead row versions until VACUUM reuses the space,
        so the operator's storage encryption and VACUUM schedule decide when the bytes are gone.
        """
        removed: dict[str, int] = {}
        tables = [
            r[0]
            for r in await self.db.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' AND table_name NOT IN ('schema_version', 'meta') ORDER BY 1"
            )
        ]
        keep = {"cases", "findings", "audit"}
        forms = needles(account)
        for table in tables:
            columns = [
                r[0]
                for r in await self.db.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = $1 ORDER BY ordinal_position",
                    table,
                )
            ]
            if community is not None and "community" not in columns:
                continue
            marks = " OR ".join(f'strpos("{c}"::text, ${i + 1}) > 0' for c in columns for i in range(len(forms)))
            args: list[Any] = [_t(f) for f in forms]
            sql = f'SELECT ctid AS gg_ctid, * FROM "{table}" WHERE ({marks})'
            if community is not None:
                sql += f" AND community = ${len(args) + 1}"
                args.append(_t(community))
            for row in await self.db.fetch(sql, *args):
                values = {c: row[c] for c in columns}
                texts = {c: str(v) for c, v in values.items() if v is not None}
                if not any(mentions(t, account) for t in texts.values()):
                    continue
                if table not in keep and (table == "events" or account in texts.values()):
                    await self.db.execute(f'DELETE FROM "{table}" WHERE ctid = $1', row["gg_ctid"])
                    removed[table] = removed.get(table, 0) + 1
                    continue
                changed = {
                    c: scrub(v, account) for c, v in values.items() if isinstance(v, str) and mentions(v, account)
                }
                sets = ", ".join(f'"{c}" = ${i + 2}' for i, c in enumerate(changed))
                await self.db.execute(f'UPDATE "{table}" SET {sets} WHERE ctid = $1', row["gg_ctid"], *changed.values())
                removed[f"{table} (scrubbed)"] = removed.get(f"{table} (scrubbed)", 0) + 1
        return removed

    @_serialized
    async def purge_expired(self, now: datetime, message_days: int, event_days: int) -> dict[str, int]:
        """Delete message text and raw events past their retention period (never unprocessed events)."""
        out = {
            "messages": _n(
                await self.db.execute(
                    "DELETE FROM messages WHERE at < $1", (now - timedelta(days=message_days)).isoformat()
                )
            )
        }
        out["message_turns"] = _n(
            await self.db.execute(
                "DELETE FROM message_turns WHERE at < $1", (now - timedelta(days=message_days)).isoformat()
            )
        )
        # Never an event its partition has not processed yet (a NULL part matches no partition: kept).
        out["events"] = _n(
            await self.db.execute(
                "DELETE FROM events WHERE at < $1 AND seq <= (SELECT p.watermark FROM partitions p WHERE p.part = events.part)",
                (now - timedelta(days=event_days)).isoformat(),
            )
        )
        out["view_authors"] = _n(
            await self.db.execute("DELETE FROM view_authors WHERE hour < $1", int(now.timestamp()) // 3600 - 48)
        )
        # Raw events outlive message text: blank the text inside older message bodies too.
        out["event_text"] = _n(
            await self.db.execute(
                "UPDATE events SET body = jsonb_set(body::jsonb, '{text}', '\"\"')::text "
                "WHERE type IN ('message_sent', 'message_edited') AND at < $1 AND body::jsonb->>'text' <> ''",
                (now - timedelta(days=message_days)).isoformat(),
            )
        )
        return out

    def tables(self) -> PostgresDatabase:
        """A connection of its own to this database, for an adapter's tables (see groomguard.store.db)."""
        return PostgresDatabase(self.url)

    @_serialized
    async def counts(self) -> dict[str, int]:
        out = {}
        for table in (
            "events",
            "accounts",
            "contacts",
            "requests",
            "messages",
            "findings",
            "cases",
            "actions",
            "audit",
        ):
            out[table] = int(await self.db.fetchval(f"SELECT COUNT(*) FROM {table}"))
        return out
