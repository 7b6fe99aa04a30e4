"""The engine's store written once: every SQL statement, in the dialect of groomguard.store.db, for both backends.

`SqlStore` holds what SQLite and PostgreSQL share (the batch write, snapshot, detector reads, outbox,
cases, audit, erasure, retention); `SqliteStore` and `PostgresStore` add only what truly differs: the
connection, how events get their sequence numbers, the PostgreSQL processing lease, and SQLite's
read-only connection and WAL checkpoint. Each statement's rows go through the dialect as they are.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from groomguard.actions import Action
from groomguard.cases import Case
from groomguard.events import AgeBand, BaseEvent, EventError, iso_utc, parse_event
from groomguard.memory import MemoryRow
from groomguard.privacy import erasure_placeholder, mentions, needles, scrub
from groomguard.records import Account, ContactEdge, RequestRecord, Turn
from groomguard.state import VIEW_HISTORY_HOURS
from groomguard.storage import ActionT, BatchWrite, Snapshot
from groomguard.store.db import PostgresDatabase, SqliteDatabase, read_migrations
from pydantic import TypeAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")
_YEAR_ONE = datetime.min.replace(tzinfo=UTC)

ACTION_ADAPTER: TypeAdapter[ActionT] = TypeAdapter(Action)
#: Advisory lock (PostgreSQL; "GG" + purpose) that two engines starting together take to migrate in turn.
MIGRATION_LOCK = 0x4747_0003

#: What `forget` does with a row that names the erased account, per table (the sweep, `SqlStore._sweep`).
#: Deleted whenever any column names it, even inside a longer id: the raw event log, and detector memory,
#: whose pair keys ("adult|child") are that pair's state, looked up by nobody under a placeholder.
ERASE_ROWS = frozenset({"events", "detector_memory"})
#: Kept, with the id rewritten, even where a column equals it: other suspects' cases, findings and audit.
#: Every other table (conversations, requests, messages and turns, the outbox, adapters' cards and
#: delivery markers) loses rows with a column equal to the id and keeps the rest with the id rewritten.
ERASE_KEEPS = frozenset({"cases", "findings", "audit"})

#: Statements of one processed batch, in the order `batch_statements` runs them.
UPSERT_ACCOUNT = (
    "INSERT INTO accounts VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (community, account) DO UPDATE "
    "SET band = excluded.band, age = excluded.age, band_source = excluded.band_source, "
    "created_at = excluded.created_at, joined_at = excluded.joined_at, first_seen = excluded.first_seen"
)
INSERT_REGION = "INSERT INTO regions VALUES ($1,$2,$3) ON CONFLICT DO NOTHING"
INSERT_CONTACT = "INSERT INTO contacts VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING"
INSERT_REQUEST = (
    "INSERT INTO requests (community, source, target, request_id, kind, requested_at, event_key) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING"
)
ANSWER_REQUEST = (
    "UPDATE requests SET status = $1, answered_at = $2 WHERE community = $3 AND source = $4 "
    "AND target = $5 AND request_id = $6 AND status = 'pending'"
)
INSERT_ACCEPTED = "INSERT INTO accepted VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
INSERT_VIEW_AUTHOR = "INSERT INTO view_authors VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
ADD_VIEWS = (
    "INSERT INTO views VALUES ($1,$2,$3,$4,$5) ON CONFLICT (community, viewer, hour) DO UPDATE SET "
    "to_minors = views.to_minors + excluded.to_minors, total = views.total + excluded.total"
)
UPSERT_CONVERSATION = (
    "INSERT INTO conversations VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (community, conversation) "
    "DO UPDATE SET last_at = excluded.last_at, messages = conversations.messages + excluded.messages"
)
UPSERT_MESSAGE = (
    "INSERT INTO messages VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (community, message_id) DO UPDATE "
    "SET conversation = excluded.conversation, author = excluded.author, at = excluded.at, text = excluded.text"
)
EDIT_MESSAGE = "UPDATE messages SET text = $1 WHERE community = $2 AND message_id = $3"
DELETE_MESSAGE = "DELETE FROM messages WHERE community = $1 AND message_id = $2"
UPSERT_STANDING = (
    "INSERT INTO standings VALUES ($1,$2,$3,$4,$5) ON CONFLICT (community, account, standing) "
    "DO UPDATE SET held = excluded.held, at = excluded.at"
)
INSERT_TURN = "INSERT INTO message_turns VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING"
DELETE_TURN = "DELETE FROM message_turns WHERE community = $1 AND message_id = $2"
UPSERT_CASE = (
    "INSERT INTO cases VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (id) DO UPDATE SET "
    "platform = excluded.platform, community = excluded.community, suspect = excluded.suspect, "
    "status = excluded.status, risk = excluded.risk, risk_at = excluded.risk_at, "
    "opened_at = excluded.opened_at, updated_at = excluded.updated_at, "
    "alert_version = excluded.alert_version, dismissals = excluded.dismissals, "
    "children = excluded.children, reasons = excluded.reasons"
)
INSERT_FINDING = (
    "INSERT INTO findings (case_id, detector, community, suspect, score, reason, evidence, child, at, "
    "event_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
)
# Deterministic action ids + DO NOTHING: a batch re-processed after a crash cannot double an alert.
INSERT_ACTION = (
    "INSERT INTO actions (id, kind, case_id, subject, created_at, payload) VALUES ($1,$2,$3,$4,$5,$6) "
    "ON CONFLICT (id) DO NOTHING"
)
INSERT_NOTICE = "INSERT INTO notices (community, child, suspect, at, stage) VALUES ($1,$2,$3,$4,$5)"
INSERT_AUDIT = "INSERT INTO audit (at, actor, action, community, case_id, detail) VALUES ($1,$2,$3,$4,$5,$6)"
DELETE_MEMORY = "DELETE FROM detector_memory WHERE detector = $1 AND community = $2 AND key = $3"
UPSERT_MEMORY = (
    "INSERT INTO detector_memory VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (detector, community, key) "
    "DO UPDATE SET value = excluded.value, accounts = excluded.accounts, expires_at = excluded.expires_at"
)
UPSERT_META = "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value"

#: `meta` rows holding one-time web sign-in links, by token digest.
WEB_LINK = "web_link:"
#: Tables `counts` reports (what `groomguard status` shows).
COUNTED = ("events", "accounts", "contacts", "requests", "messages", "findings", "cases", "actions", "audit")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value else None


def _first(row: Any) -> str:
    return str(row[0])


def _subject(action: ActionT) -> str:
    return getattr(action, "suspect", None) or getattr(action, "child", "")


def batch_statements(batch: BatchWrite, meta_watermark: bool = True) -> list[tuple[str, list[Any]]]:
    """The (statement, rows) pairs that write one processed batch, in order; run inside one transaction.

    `meta_watermark`: the one watermark goes to `meta` (SQLite); PostgreSQL keeps one per partition instead.
    """
    s = batch.state
    out: list[tuple[str, list[Any]]] = []

    def add(sql: str, rows: Any) -> None:
        if rows:
            out.append((sql, rows if isinstance(rows, list) else list(rows)))

    add(
        UPSERT_ACCOUNT,
        [
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
        ],
    )
    add(INSERT_REGION, s.regions)
    add(INSERT_CONTACT, s.contacts)
    add(INSERT_REQUEST, s.requests)
    add(ANSWER_REQUEST, s.answers)
    add(INSERT_ACCEPTED, s.accepted)
    add(INSERT_VIEW_AUTHOR, sorted(s.view_authors))
    add(ADD_VIEWS, [(c, v, h, n[0], n[1]) for (c, v, h), n in s.views.items()])
    add(UPSERT_CONVERSATION, [(c, conv, int(v[0]), v[1], v[2], v[3]) for (c, conv), v in s.conversations.items()])
    # Deletions first: what the batch sent after deleting a message id is written after it (PendingWrites).
    add(DELETE_MESSAGE, list(s.deleted_messages))
    add(UPSERT_MESSAGE, list(s.messages.values()))
    add(EDIT_MESSAGE, [(text, c, m) for (c, m), text in s.edited_messages.items()])
    add(UPSERT_STANDING, s.standings)
    add(DELETE_TURN, list(s.deleted_messages))
    add(INSERT_TURN, list(s.turns.values()))
    add(
        UPSERT_CASE,
        [
            case.to_row(
                batch.case_clocks.get(case.id) or batch.clocks.get(case.community, batch.watermark_at),
                batch.half_life_hours,
            )
            for case in batch.cases
        ],
    )
    add(
        INSERT_FINDING,
        [
            (
                cid,
                f.detector,
                f.community,
                f.suspect,
                f.score,
                f.reason,
                json.dumps([e.model_dump(mode="json") for e in f.evidence]),
                f.child,
                iso_utc(f.at),
                f.event_key,
            )
            for cid, f in batch.findings
        ],
    )
    add(
        INSERT_ACTION,
        [
            (a.action_id, a.kind, getattr(a, "case_id", None), _subject(a), iso_utc(a.at), a.model_dump_json())
            for a in batch.actions
        ],
    )
    add(INSERT_NOTICE, batch.notices)
    add(
        INSERT_AUDIT,
        [(iso_utc(a.at), a.actor, a.action, a.community, a.case_id, json.dumps(a.detail)) for a in batch.audit],
    )
    add(DELETE_MEMORY, [(r.detector, r.community, r.key) for r in batch.memory if r.value is None])
    add(
        UPSERT_MEMORY,
        [
            (r.detector, r.community, r.key, r.value, json.dumps(r.accounts), _iso(r.expires_at))
            for r in batch.memory
            if r.value is not None
        ],
    )
    if meta_watermark:
        add(UPSERT_META, [("watermark", str(batch.watermark)), ("watermark_at", batch.watermark_at.isoformat())])
    return out


def serialized(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a store method under the store's lock: its one connection runs one operation (or transaction) at
    a time, and the engine's batch worker, outbox dispatcher and webhook ingest call the store concurrently.
    Methods under the lock call only private helpers, never another serialized method (it is not reentrant)."""

    @functools.wraps(method)
    async def wrapper(self: SqlStore, *args: Any, **kwargs: Any) -> T:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper


class SqlStore:
    """The store contract (groomguard.storage.Store) over one dialect connection; backends subclass it."""

    #: The folder of numbered migrations for this backend (the numbers are the same in both).
    migration_folder: ClassVar[str]
    #: Whether a batch commits the one watermark in `meta` (see `batch_statements`).
    meta_watermark: ClassVar[bool] = True

    def __init__(self, database: SqliteDatabase | PostgresDatabase) -> None:
        self.database = database
        self._lock = asyncio.Lock()
        # The detector reads that need a dialect fragment, built once (they run several times per event).
        self._contacts_sql = (
            "SELECT target, kind, first_at, event_key FROM contacts WHERE community = $1 AND source = $2 "
            f"AND ({database.unindexed('first_at')} >= $3"
        )
        # In primary-key order, as SQLite (WITHOUT ROWID) returns them: never PostgreSQL's heap order.
        self._contacts_recent_sql = self._contacts_sql + ") ORDER BY target"
        self._requests_sql = (
            "SELECT target, request_id, kind, requested_at, status, answered_at, event_key FROM requests "
            f"WHERE community = $1 AND source = $2 AND {database.unindexed('requested_at')} >= $3 "
            "ORDER BY target, request_id"
        )

    @classmethod
    def migrations(cls) -> list[tuple[int, str]]:
        return read_migrations(cls.migration_folder)

    async def _migrate(self) -> None:
        """Apply the numbered migrations past the recorded version, all in one transaction."""
        db = self.database
        async with db.transaction():
            await db.xact_lock(MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            for version, sql in self.migrations():
                if version <= current:
                    continue
                log.info("applying %s migration %03d", db.dialect, version)
                await db.script(sql)
                await db.execute("INSERT INTO schema_version VALUES ($1, $2)", version, datetime.now(UTC).isoformat())

    async def _query(self, statement: str, *args: Any) -> list[Any]:
        """One detector read, under the lock (one asyncpg connection runs one statement at a time)."""
        async with self._lock:
            return await self.database.fetch(statement, *args)

    #: Whether `_fast` hands back an awaitable (PostgreSQL) rather than the rows (SQLite).
    _awaits: ClassVar[bool] = True

    def _fast(self, statement: str, *args: Any) -> Any:
        """A detector read: the rows now where the backend reads synchronously (SqliteStore's read-only
        connection: no coroutine hop on the event loop's hottest path), else an awaitable of them."""
        return self._query(statement, *args)

    def _keep(self, rows: Sequence[Any], community: Callable[[Any], str]) -> list[Any]:
        """The rows of communities this engine processes: all of them, unless the backend shares the work."""
        return list(rows)

    def processes(self, community: str) -> bool:
        """Whether this engine processes `community` (and so delivers its actions): always, unless shared."""
        return True

    async def _marks(self, snap: Snapshot) -> None:
        """Fill in where processing stands (the one watermark in `meta`; PostgreSQL: per partition)."""
        snap.watermark = int(await self._meta("watermark") or 0)
        snap.watermark_at = _dt(await self._meta("watermark_at"))

    async def _fence(self) -> None:
        """First statement of a batch's transaction: PostgreSQL checks its partition leases here."""

    async def _processed(self, first: int) -> tuple[str, list[Any]]:
        """SQL (binding from `$first`) true for events whose processing is committed, with its arguments."""
        return f"seq <= ${first}", [int(await self._meta("watermark") or 0)]

    async def _meta(self, name: str) -> str | None:
        value = await self.database.fetchval("SELECT value FROM meta WHERE name = $1", name)
        return str(value) if value is not None else None

    async def _keyed(self, statement: str, keys: Sequence[str]) -> list[Any]:
        """Rows of `statement` (ending in a WHERE) for these event keys, in chunks the dialect can bind."""
        rows: list[Any] = []
        step = self.database.max_params
        for start in range(0, len(keys), step):
            condition, args = self.database.in_list("key", 1, list(keys[start : start + step]))
            rows.extend(await self.database.fetch(f"{statement} {condition}", *args))
        return rows

    # -- event log ------------------------------------------------------------------------

    @serialized
    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these event keys are already stored (lets ingest name duplicates)."""
        return {r[0] for r in await self._keyed("SELECT key FROM events WHERE", keys)}

    @serialized
    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored bodies of these event keys, so ingest can tell a resend from a reused id."""
        return {r[0]: r[1] for r in await self._keyed("SELECT key, body FROM events WHERE", keys)}

    @serialized
    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        """Stored events past `seq`, in order. A body this version refuses (stored by an older one) is logged
        and skipped: it must not stop every start's recovery, nor end a catch-up early."""
        out: list[tuple[int, BaseEvent]] = []
        while True:
            rows = await self.database.fetch(
                "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
            )
            for row in rows:
                try:
                    out.append((int(row[0]), parse_event(row[1])))
                except EventError as error:
                    log.error("stored event %d cannot be read, skipped: %s", row[0], error.reason)
            if out or len(rows) < limit:
                return out
            seq = int(rows[-1][0])

    # -- state ----------------------------------------------------------------------------

    @serialized
    async def snapshot(self, contact_window_hours: float) -> Snapshot:
        db = self.database
        keep = self._keep
        snap = Snapshot()
        await self._marks(snap)
        regions: dict[tuple[str, str], set[str]] = {}
        for row in keep(await db.fetch("SELECT community, account, region FROM regions"), _first):
            regions.setdefault((row[0], row[1]), set()).add(row[2])
        standings: dict[tuple[str, str], set[str]] = {}
        for row in keep(await db.fetch("SELECT community, account, standing FROM standings WHERE held = 1"), _first):
            standings.setdefault((row[0], row[1]), set()).add(row[2])
        for row in keep(await db.fetch("SELECT * FROM accounts ORDER BY community, account"), _first):
            key = (row["community"], row["account"])
            snap.accounts.append(
                (
                    row["community"],
                    Account(
                        row["account"],
                        AgeBand(row["band"]),
                        row["age"],
                        row["band_source"],
                        frozenset(regions.get(key, ())),
                        _dt(row["created_at"]),
                        _dt(row["joined_at"]),
                        _dt(row["first_seen"]),
                        frozenset(standings.get(key, ())),
                    ),
                )
            )
        if snap.watermark_at is not None:
            # Contact edges are not loaded here: the state reads them per source (contacts_from), so
            # start-up memory does not grow with millions of stored edges. Notices: a day back from the
            # slowest community's clock, so each community keeps its own notice history.
            clocks = keep(
                await db.fetch(
                    f"SELECT community, {db.json_scalar('value')} FROM detector_memory WHERE detector = 'engine.clock'"
                ),
                _first,
            )
            slowest = min([snap.watermark_at, *(datetime.fromisoformat(r[1]) for r in clocks)])
            # A clock near year 1 (stored before event times were bounded below) must not stop every start.
            day_ago = (slowest - min(timedelta(days=1), slowest - _YEAR_ONE)).isoformat()
            rows = await db.fetch(
                "SELECT community, child, suspect, at, stage FROM notices WHERE at >= $1 ORDER BY at", day_ago
            )
            snap.notices = [(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4]) for r in keep(rows, _first)]
        rows = await db.fetch("SELECT * FROM cases WHERE status IN ('open', 'escalated', 'confirmed') ORDER BY id")
        snap.cases = [Case.from_row(row) for row in keep(rows, lambda r: r["community"])]
        snap.next_case_id = int(await db.fetchval("SELECT COALESCE(MAX(id), 0) + 1 FROM cases"))
        rows = await db.fetch(
            "SELECT community, suspect, SUM(dismissals) FROM cases GROUP BY community, suspect HAVING SUM(dismissals) > 0"
        )
        snap.dismissals = {(r[0], r[1]): int(r[2]) for r in keep(rows, _first)}
        return snap

    @serialized
    async def commit_batch(self, batch: BatchWrite) -> None:
        """Write one processed batch atomically: state rows, cases, findings, outbox, watermark."""
        db = self.database
        statements = batch_statements(batch, self.meta_watermark)
        async with db.transaction():
            await self._fence()
            for sql, rows in statements:
                await db.executemany(sql, rows)

    async def accepted_contacts(self, community: str, account: str) -> set[str]:
        rows = self._fast("SELECT b FROM accepted WHERE community = $1 AND a = $2", community, account)
        if self._awaits:
            rows = await rows
        return {row[0] for row in rows}

    # -- detector reads (groomguard.state.StateReader) -------------------------------------------

    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]:
        """First contacts `source` started since `since`, plus its stored edges to `targets` of any age."""
        # Unindexed first_at keeps SQLite on the primary key (one source's edges), never the community-wide
        # time index.
        sql, args = self._contacts_recent_sql, [community, source, since.isoformat()]
        if targets:
            condition, values = self.database.in_list("target", 4, targets)
            sql = f"{self._contacts_sql} OR {condition}) ORDER BY target"
            args.extend(values)
        rows = self._fast(sql, *args)
        if self._awaits:
            rows = await rows
        return [ContactEdge(source, row[0], row[1], datetime.fromisoformat(row[2]), row[3]) for row in rows]

    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]:
        """Answerable requests `source` sent since `since`, with their status so far (primary-key range only)."""
        rows = self._fast(
            self._requests_sql,
            community,
            source,
            since.isoformat(),
        )
        if self._awaits:
            rows = await rows
        return [RequestRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], _dt(r[5]), r[6]) for r in rows]

    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]:
        """(hour, views of minors' content, all views) for one viewer since `from_hour`."""
        rows = self._fast(
            "SELECT hour, to_minors, total FROM views WHERE community = $1 AND viewer = $2 AND hour >= $3 ORDER BY hour",
            community,
            viewer,
            from_hour,
        )
        if self._awaits:
            rows = await rows
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def viewer_minor_authors(self, community: str, viewer: str, hour: int) -> set[str]:
        rows = self._fast(
            "SELECT author FROM view_authors WHERE community = $1 AND viewer = $2 AND hour = $3",
            community,
            viewer,
            hour,
        )
        if self._awaits:
            rows = await rows
        return {r[0] for r in rows}

    async def community_view_buckets(self, community: str, from_hour: int) -> list[tuple[int, int, int]]:
        """(hour, views of minors' content, all views) summed over the community since `from_hour`."""
        rows = self._fast(
            "SELECT hour, SUM(to_minors), SUM(total) FROM views WHERE community = $1 AND hour >= $2 GROUP BY hour",
            community,
            from_hour,
        )
        if self._awaits:
            rows = await rows
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def accepted_degree(self, community: str, account: str) -> int:
        """How many accounts `account` has accepted contact with (the hub rule's degree)."""
        rows = self._fast("SELECT COUNT(*) FROM accepted WHERE community = $1 AND a = $2", community, account)
        if self._awaits:
            rows = await rows
        return int(rows[0][0]) if rows else 0

    async def message_author(self, community: str, message_id: str) -> str | None:
        rows = self._fast(
            "SELECT author FROM message_turns WHERE community = $1 AND message_id = $2", community, message_id
        )
        if self._awaits:
            rows = await rows
        return str(rows[0][0]) if rows else None

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        """The newest `limit` group messages in `conversation` since `since`, oldest first (by time, then id)."""
        rows = self._fast(
            "SELECT author, at, message_id FROM message_turns WHERE community = $1 AND conversation = $2 "
            "AND at >= $3 ORDER BY at DESC, message_id DESC LIMIT $4",
            community,
            conversation,
            since.isoformat(),
            limit,
        )
        if self._awaits:
            rows = await rows
        return [Turn(r[0], datetime.fromisoformat(r[1]), r[2]) for r in reversed(rows)]

    # -- detector memory (groomguard.memory.MemoryReader) ---------------------------------------

    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None:
        rows = self._fast(
            "SELECT value, accounts, expires_at FROM detector_memory WHERE detector = $1 AND community = $2 AND key = $3",
            detector,
            community,
            key,
        )
        if self._awaits:
            rows = await rows
        if not rows:
            return None
        value, accounts, expires = rows[0]
        return MemoryRow(detector, community, key, value, tuple(json.loads(accounts)), _dt(expires))

    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]:
        rows = self._fast(
            "SELECT detector, community, key, value, accounts, expires_at FROM detector_memory "
            "WHERE substr(detector, 1, $1) = $2 ORDER BY detector, community, key",
            len(detector_prefix),
            detector_prefix,
        )
        if self._awaits:
            rows = await rows
        rows = self._keep(rows, lambda r: r[1])
        return [MemoryRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), _dt(r[5])) for r in rows]

    @serialized
    async def purge_memory(self, before: datetime) -> int:
        """Delete memory rows that expired before `before` (they are already hidden from detectors)."""
        return await self.database.execute(
            "DELETE FROM detector_memory WHERE expires_at IS NOT NULL AND expires_at < $1", before.isoformat()
        )

    # -- outbox ---------------------------------------------------------------------------

    @serialized
    async def pending_actions(self) -> list[ActionT]:
        rows = await self.database.fetch(
            "SELECT payload FROM actions WHERE delivered_at IS NULL ORDER BY created_at, id"
        )
        return self._keep([ACTION_ADAPTER.validate_json(row[0]) for row in rows], lambda a: a.community)

    @serialized
    async def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        ids, step = list(action_ids), self.database.max_params - 1
        for start in range(0, len(ids), step):
            condition, args = self.database.in_list("id", 2, ids[start : start + step])
            await self.database.execute(
                f"UPDATE actions SET delivered_at = $1 WHERE {condition}", at.isoformat(), *args
            )

    # -- cases and audit ------------------------------------------------------------------

    @serialized
    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT id, platform, community, suspect, status, risk, opened_at, updated_at, alert_version FROM cases"
        if status:
            rows = await self.database.fetch(sql + " WHERE status = $1 ORDER BY risk DESC, id LIMIT $2", status, limit)
        else:
            rows = await self.database.fetch(sql + " ORDER BY risk DESC, id LIMIT $1", limit)
        return [dict(r) for r in rows]

    @serialized
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None:
        db = self.database
        row = await db.fetchrow("SELECT * FROM cases WHERE id = $1", case_id)
        if row is None:
            return None
        findings = await db.fetch(
            "SELECT detector, score, reason, evidence, child, at FROM findings WHERE case_id = $1 ORDER BY id", case_id
        )
        audit = await db.fetch("SELECT at, actor, action, detail FROM audit WHERE case_id = $1 ORDER BY id", case_id)
        return Case.from_row(row), [dict(r) for r in findings], [dict(r) for r in audit]

    @serialized
    async def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        detail: dict[str, Any],
        community: str | None = None,
        case_id: int | None = None,
    ) -> None:
        await self.database.execute(INSERT_AUDIT, at.isoformat(), actor, action, community, case_id, json.dumps(detail))

    # -- one-time sign-in links of the web case view (groomguard.app.web) ---------------------------

    @serialized
    async def put_web_link(self, digest: str, moderator: str, expires_at: datetime) -> None:
        """Keep a one-time link by the SHA-256 of its token (the token itself is never stored)."""
        await self.database.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2)",
            WEB_LINK + digest,
            json.dumps({"moderator": moderator, "expires_at": expires_at.isoformat()}),
        )

    @serialized
    async def take_web_link(self, digest: str, now: datetime) -> str | None:
        """Use a link once: delete it and return its moderator, or None (unknown, used or expired)."""
        db = self.database
        value = await db.fetchval("DELETE FROM meta WHERE name = $1 RETURNING value", WEB_LINK + digest)
        rows = await db.fetch("SELECT name, value FROM meta WHERE substr(name, 1, $1) = $2", len(WEB_LINK), WEB_LINK)
        stale = [r[0] for r in rows if datetime.fromisoformat(json.loads(r[1])["expires_at"]) <= now]
        if stale:
            condition, args = db.in_list("name", 1, stale)
            await db.execute(f"DELETE FROM meta WHERE {condition}", *args)
        if value is None:
            return None
        link = json.loads(value)
        return str(link["moderator"]) if datetime.fromisoformat(link["expires_at"]) > now else None

    # -- privacy --------------------------------------------------------------------------

    def _forget_statements(self) -> dict[str, str]:
        """DELETE per table of the rows naming the account ($1) in a column that holds account ids."""
        db = self.database

        def body(field: str) -> str:
            return f"{db.json_text('body', field)} = $1"

        fields = ("account", "source", "target", "author", "viewer", "moderator", "reply_to_author")
        return {
            "events": "DELETE FROM events WHERE {scope}("
            + " OR ".join(body(f) for f in fields)
            + f" OR {db.json_has('body', 'recipients', '$1')} OR {db.json_has('body', 'mentions', '$1')})",
            "accounts": "DELETE FROM accounts WHERE {scope}account = $1",
            "regions": "DELETE FROM regions WHERE {scope}account = $1",
            "contacts": "DELETE FROM contacts WHERE {scope}(source = $1 OR target = $1)",
            "requests": "DELETE FROM requests WHERE {scope}(source = $1 OR target = $1)",
            "accepted": "DELETE FROM accepted WHERE {scope}(a = $1 OR b = $1)",
            "views": "DELETE FROM views WHERE {scope}viewer = $1",
            "view_authors": "DELETE FROM view_authors WHERE {scope}(viewer = $1 OR author = $1)",
            "messages": "DELETE FROM messages WHERE {scope}author = $1",
            "standings": "DELETE FROM standings WHERE {scope}account = $1",
            "message_turns": "DELETE FROM message_turns WHERE {scope}author = $1",
            "notices": "DELETE FROM notices WHERE {scope}(child = $1 OR suspect = $1)",
            "findings": "DELETE FROM findings WHERE {scope}(suspect = $1 OR child = $1)",
            "cases": "DELETE FROM cases WHERE {scope}suspect = $1",
            "detector_memory": "DELETE FROM detector_memory WHERE {scope}(key = $1 OR "
            + db.json_has("accounts", None, "$1")
            + ")",
        }

    @serialized
    async def forget(self, account: str, community: str | None = None) -> dict[str, int]:
        """Erase one account's data everywhere it is stored; returns rows removed per table."""
        db = self.database
        account = db.stored_text(account)  # as the rows hold it, so the comparisons in Python match
        # $1 is the account (or its JSON token), $2 the community when the erasure is scoped to one.
        scope = "community = $2 AND " if community else ""
        args: tuple[Any, ...] = (account, community) if community else (account,)
        token = json.dumps(account)
        targs: tuple[Any, ...] = (token, community) if community else (token,)
        removed: dict[str, int] = {}

        def count(table: str, n: int) -> None:
            removed[table] = removed.get(table, 0) + n

        async with db.transaction():
            case_ids = [r[0] for r in await db.fetch(f"SELECT id FROM cases WHERE {scope}suspect = $1", *args)]
            if case_ids:
                condition, ids = db.in_list("case_id", 1, case_ids)
                count("findings", await db.execute(f"DELETE FROM findings WHERE {condition}", *ids))
                count("actions", await db.execute(f"DELETE FROM actions WHERE {condition}", *ids))
            for table, sql in self._forget_statements().items():
                count(table, await db.execute(sql.replace("{scope}", scope), *args))
            # Anything else that names the account as a JSON string: outbox payloads (alert cards list
            # the children), other suspects' case and finding evidence, and audit details.
            action_scope = f"{db.json_text('payload', 'community')} = $3 AND " if community else ""
            count(
                "actions",
                await db.execute(
                    f"DELETE FROM actions WHERE {action_scope}(subject = $1 OR {db.contains('payload', '$2')})",
                    account,
                    token,
                    *((community,) if community else ()),
                ),
            )
            for row in await db.fetch(
                f"SELECT id, children, reasons FROM cases WHERE {scope}"
                f"({db.contains('children', '$1')} OR {db.contains('reasons', '$1')})",
                *targs,
            ):
                kids = [k for k in json.loads(row[1]) if k != account]
                extra = json.loads(row[2])
                for reason in extra.get("reasons", {}).values():
                    reason["evidence"] = [e for e in reason.get("evidence", []) if e.get("ref") != account]
                await db.execute(
                    "UPDATE cases SET children = $1, reasons = $2 WHERE id = $3",
                    json.dumps(kids),
                    json.dumps(extra),
                    row[0],
                )
            for row in await db.fetch(
                f"SELECT id, evidence FROM findings WHERE {scope}{db.contains('evidence', '$1')}", *targs
            ):
                kept = [e for e in json.loads(row[1]) if e.get("ref") != account]
                await db.execute("UPDATE findings SET evidence = $1 WHERE id = $2", json.dumps(kept), row[0])
            removed["audit (redacted)"] = await db.execute(
                f"""UPDATE audit SET detail = '{{"redacted": true}}' WHERE {scope}{db.contains("detail", "$1")}""",
                *targs,
            )
            if community is None:  # the web view's one-time sign-in links name a moderator, no community
                count(
                    "web links",
                    await db.execute(
                        f"DELETE FROM meta WHERE substr(name, 1, $1) = $2 AND {db.contains('value', '$3')}",
                        len(WEB_LINK),
                        WEB_LINK,
                        token,
                    ),
                )
            for table, n in (await self._sweep(account, community)).items():
                count(table, n)
            await db.execute(
                "INSERT INTO audit (at, actor, action, community, detail) VALUES ($1,$2,$3,$4,$5)",
                datetime.now(UTC).isoformat(),
                "groomguard",
                "forget",
                community,
                json.dumps({"rows": sum(removed.values())}),
            )
        await self._erased()
        return {k: v for k, v in removed.items() if v}

    async def _erased(self) -> None:
        """After an erasure commits: make the deleted bytes go (SQLite folds its WAL; see SqliteStore)."""

    async def _sweep(self, account: str, community: str | None) -> dict[str, int]:
        """Find the id in every column of every table (adapters' tables too) and remove it.

        The targeted deletes in `forget` know which columns name accounts; this catches the rest: the id
        inside conversation ids, request refs, reasons ("friend to kid5 on ..."), cards and payloads. Per
        row: a row of ERASE_ROWS naming it anywhere, or of any table but ERASE_KEEPS with a column equal to
        it, is deleted; elsewhere the id is rewritten to this erasure's placeholder (see
        `erasure_placeholder`), so ids that were keys stay distinct keys and never merge two rows.
        """
        db = self.database
        removed: dict[str, int] = {}
        forms = needles(account)
        placeholder = erasure_placeholder()
        for table in await db.table_names():
            columns, ident = await db.table_columns(table)
            if community is not None and "community" not in columns:
                continue  # a community-scoped erasure cannot tell which community these rows belong to
            marks = " OR ".join(
                db.contains(f'CAST("{c}" AS TEXT)', f"${i + 1}") for c in columns for i in range(len(forms))
            )
            args: list[Any] = list(forms)
            sql = f'SELECT {", ".join(ident)}, * FROM "{table}" WHERE ({marks})'
            if community is not None:
                sql += f" AND community = ${len(args) + 1}"
                args.append(community)
            where = " AND ".join(db.same(k, f"${i + 1}") for i, k in enumerate(ident))
            for row in await db.fetch(sql, *args):
                key, values = tuple(row)[: len(ident)], dict(zip(columns, tuple(row)[len(ident) :], strict=True))
                texts = {c: str(v) for c, v in values.items() if v is not None}
                if not any(mentions(t, account) for t in texts.values()):
                    continue  # only inside a longer id ("kid50" for "kid5"): someone else's
                if table in ERASE_ROWS or (table not in ERASE_KEEPS and account in texts.values()):
                    await db.execute(f'DELETE FROM "{table}" WHERE {where}', *key)
                    removed[table] = removed.get(table, 0) + 1
                    continue
                changed = {
                    c: scrub(v, account, placeholder)
                    for c, v in values.items()
                    if isinstance(v, str) and mentions(v, account)
                }
                sets = ", ".join(f'"{c}" = ${len(ident) + i + 1}' for i, c in enumerate(changed))
                # A plain UPDATE on both backends: were a rewritten key ever to meet another row's, the
                # erasure fails and rolls back instead of silently replacing that row (SQLite's OR REPLACE).
                await db.execute(f'UPDATE "{table}" SET {sets} WHERE {where}', *key, *changed.values())
                removed[f"{table} (scrubbed)"] = removed.get(f"{table} (scrubbed)", 0) + 1
        return removed

    @serialized
    async def purge_expired(self, now: datetime, message_days: int, event_days: int) -> dict[str, int]:
        """Delete message text and raw events past their retention period (never unprocessed events)."""
        db = self.database
        text_before = (now - timedelta(days=message_days)).isoformat()
        out = {
            "messages": await db.execute("DELETE FROM messages WHERE at < $1", text_before),
            "message_turns": await db.execute("DELETE FROM message_turns WHERE at < $1", text_before),
        }
        # Never delete unprocessed events: they are still owed to the detectors.
        processed, args = await self._processed(2)
        out["events"] = await db.execute(
            f"DELETE FROM events WHERE at < $1 AND {processed}", (now - timedelta(days=event_days)).isoformat(), *args
        )
        # Per-viewer hourly view counts feed view_spike's baseline (VIEW_HISTORY_HOURS back): kept that long
        # or as long as message text, whichever is longer, and no longer (they say who looked at whom).
        view_hours = max(message_days * 24, VIEW_HISTORY_HOURS)
        out["views"] = await db.execute("DELETE FROM views WHERE hour < $1", int(now.timestamp()) // 3600 - view_hours)
        # Distinct-author rows only serve the current hour's spike check; two days is plenty.
        out["view_authors"] = await db.execute(
            "DELETE FROM view_authors WHERE hour < $1", int(now.timestamp()) // 3600 - 48
        )
        # Raw events outlive message text: blank the text inside older message bodies too.
        out["event_text"] = await db.execute(
            f"UPDATE events SET body = {db.json_blank('body', 'text')} WHERE type IN ('message_sent', 'message_edited') "
            f"AND at < $1 AND {db.json_text('body', 'text')} <> ''",
            text_before,
        )
        return out

    @serialized
    async def counts(self) -> dict[str, int]:
        return {table: int(await self.database.fetchval(f"SELECT COUNT(*) FROM {table}")) for table in COUNTED}
