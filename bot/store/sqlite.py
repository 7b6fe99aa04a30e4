"""SQLite store through aiosqlite: WAL, numbered migrations, one writer, batched transactions."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any

import aiosqlite
from groomguard.actions import Action
from groomguard.cases import Case
from groomguard.events import AgeBand, BaseEvent, parse_event
from groomguard.memory import MemoryRow
from groomguard.privacy import mentions, needles, scrub
from groomguard.records import Account, ContactEdge, RequestRecord, Turn
from groomguard.storage import ActionT, BatchWrite, Snapshot
from groomguard.store.db import SqliteDatabase, private_file
from pydantic import TypeAdapter

log = logging.getLogger(__name__)
#: `meta` rows holding one-time web sign-in links, by token digest.
WEB_LINK = "web_link:"

ACTION_ADAPTER: TypeAdapter[ActionT] = TypeAdapter(Action)
INSERT_EVENTS = "INSERT INTO events (seq, key, type, community, at, stored_at, body) VALUES (?,?,?,?,?,?,?)"


def migrations() -> list[tuple[int, str]]:
    """Numbered SQL files shipped in bot/store/migrations, in order."""
    files = resources.files("groomguard.store") / "migrations"
    found = []
    for item in files.iterdir():
        if item.name.endswith(".sql") and item.name[:3].isdigit():
            found.append((int(item.name[:3]), item.read_text(encoding="utf-8")))
    return sorted(found)


def split_sql(script: str) -> list[str]:
    """Split a migration into statements; comments may contain ';' (sqlite3.complete_statement decides)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class StoreError(RuntimeError):
    """The database cannot be used (locked, corrupt, unwritable); the message says which file."""


class SqliteStore:
    """The embedded default store; a single connection is the single writer."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._ro: sqlite3.Connection | None = None
        self._next_seq = 1
        # Pipelined writes (see `submit_batch`): while reads are pinned, the read-only connection holds
        # one snapshot and writes queue behind processing on aiosqlite's thread.
        self._pinned = False
        self._unsynced_keys: set[str] = set()
        self._jobs: list[asyncio.Future[None]] = []
        self._write_failure: BaseException | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def open(self) -> None:
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = aiosqlite.Row
            # Deleted rows are overwritten with zeros, so an erased account leaves no bytes in free pages.
            await self._db.execute("PRAGMA secure_delete=ON")
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
            # Sequence numbers never go backwards, even after old events are purged.
            async with self._db.execute(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'watermark'), 0))"
            ) as cur:
                row = await cur.fetchone()
            self._next_seq = int(row[0]) + 1 if row else 1
            # Detector reads are point look-ups on a local indexed file: a second, read-only connection
            # on the event loop answers them in microseconds, where a hop to aiosqlite's thread costs
            # ~100x that. WAL lets it read committed data while the writer thread works; the state
            # merges the current batch's uncommitted rows itself.
            self._ro = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        except (aiosqlite.Error, OSError) as error:
            # Close the half-open connection: its worker thread would otherwise keep the process alive.
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {error}") from error

    async def _migrate(self) -> None:
        db = self.db
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for version, sql in migrations():
            if version <= current:
                continue
            log.info("applying migration %03d to %s", version, self.path)
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in split_sql(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, datetime.now(UTC).isoformat()))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    # -- pipelined writes ------------------------------------------------------------------
    #
    # Processing a batch and committing the one before it can overlap: the engine hands each batch's
    # writes over with `submit_batch` and goes on, and the transaction runs on aiosqlite's thread (which
    # releases the GIL inside SQLite). Two things keep that exact. Reads are pinned to one snapshot
    # (`pin_reads`) that does not move while commits land, so the state merges everything it handed over
    # since then, as it merges one uncommitted batch; the engine calls `settle` before moving the pin.
    # And each job is one whole transaction queued in order on the one writer connection: a kill -9
    # leaves a prefix of batches committed, each with its watermark, and once one job fails every later
    # one refuses, so no watermark can move past a batch that was not written.

    @property
    def pipelined(self) -> bool:
        """Whether `submit_batch` can queue work on the writer thread without an await (aiosqlite's queue)."""
        return hasattr(self._db, "_tx")

    def pin_reads(self) -> None:
        """Hold detector reads on the state committed now until `release_reads` (every write settled)."""
        if self._ro is None or self._pinned:
            return
        self._ro.execute("BEGIN")
        # A read transaction takes its snapshot at its first read, so take it now, not at some later read.
        self._ro.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        self._pinned = True
        self._unsynced_keys.clear()

    def release_reads(self) -> None:
        """Let detector reads see every commit again (and checkpoints run to the end)."""
        if self._ro is not None and self._ro.in_transaction:
            self._ro.execute("COMMIT")
        self._pinned = False
        self._unsynced_keys.clear()

    async def checkpoint_if_due(self) -> None:
        """Fold a grown WAL back into the database while no read is pinned, so the log restarts from its start.

        A pinned reader stops SQLite from restarting the WAL; pinned nearly all the time, the WAL grew by
        every batch (700 MB over 200k events) and every read searched a longer WAL index. Call between
        `release_reads` and `pin_reads`; the next read then starts on the checkpointed file.
        """
        try:
            size = os.path.getsize(f"{self.path}-wal")  # noqa: ASYNC240 - one stat of a local file
        except OSError:
            return
        if size >= CHECKPOINT_WAL_BYTES:
            async with self.db.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                await cur.fetchall()

    def _submit(self, work: Any, *args: Any) -> asyncio.Future[None]:
        """Queue `work(connection, *args)` as one transaction on the writer thread, now, without awaiting."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.db._tx.put_nowait((future, functools.partial(self._transaction, work, *args)))  # type: ignore[attr-defined]
        self._jobs.append(future)
        return future

    def _transaction(self, work: Any, *args: Any) -> None:
        """Runs on the writer thread: one transaction, or a refusal once an earlier one failed."""
        if self._write_failure is not None:
            raise StoreError(f"an earlier write failed, so later ones are refused: {self._write_failure}")
        con = self.db._conn  # type: ignore[attr-defined]
        try:
            con.execute("BEGIN IMMEDIATE")
            work(con, *args)
            con.execute("COMMIT")
        except BaseException as error:
            self._write_failure = error
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def submit_batch(self, batch: BatchWrite) -> asyncio.Future[None]:
        """Queue one processed batch's transaction (as `commit_batch` writes it); its future says when it is durable."""
        return self._submit(_write_statements, _batch_statements(batch))

    async def settle(self) -> None:
        """Wait for every queued write; raise the first failure."""
        jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """Run one detector read on the read-only connection (see `open`)."""
        if self._ro is None:
            raise StoreError("store is not open")
        return self._ro.execute(sql, args).fetchall()

    async def close(self) -> None:
        if self._ro is not None:
            self._ro.close()
            self._ro = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    # -- event log ------------------------------------------------------------------------

    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before (by platform + event_id) and return them with their seq."""
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        keys = list(unique)
        known: set[str] = set()
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            # Every earlier append is committed (or queued, see below), so these keys are all the known ones.
            known.update(row[0] for row in self._read(f"SELECT key FROM events WHERE key IN ({marks})", chunk))
        # Pinned reads do not show events queued since the pin; they are known all the same.
        fresh = [(k, e) for k, e in unique.items() if k not in known and k not in self._unsynced_keys]
        if not fresh:
            return []
        now = datetime.now(UTC).isoformat()
        numbered = [(self._next_seq + i, e) for i, (_, e) in enumerate(fresh)]
        rows = [
            (self._next_seq + i, k, e.type, e.community, e.at.isoformat(), now, e.model_dump_json())  # type: ignore[attr-defined]
            for i, (k, e) in enumerate(fresh)
        ]
        if self._pinned:
            # Queued ahead of the batch's own transaction: stored before its results can commit.
            self._unsynced_keys.update(k for k, _ in fresh)
            self._submit(_write_statements, [(INSERT_EVENTS, rows)])
            self._next_seq += len(numbered)
            return numbered
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            await self.db.executemany(INSERT_EVENTS, rows)
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        self._next_seq += len(numbered)
        return numbered

    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these event keys are already stored (lets ingest name duplicates)."""
        known: set[str] = set()
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            async with self.db.execute(
                f"SELECT key FROM events WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ) as cur:
                known.update(row[0] for row in await cur.fetchall())
        return known

    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored bodies of these event keys, so ingest can tell a resend from a reused id."""
        known: dict[str, str] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            async with self.db.execute(
                f"SELECT key, body FROM events WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ) as cur:
                known.update((row[0], row[1]) for row in await cur.fetchall())
        return known

    async def events_after(self, seq: int, limit: int) -> list[tuple[int, BaseEvent]]:
        async with self.db.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [(row[0], parse_event(row[1])) for row in rows]

    # -- state ----------------------------------------------------------------------------

    async def _meta(self, name: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def snapshot(self, contact_window_hours: float) -> Snapshot:
        snap = Snapshot()
        snap.watermark = int(await self._meta("watermark") or 0)
        snap.watermark_at = _dt(await self._meta("watermark_at"))
        regions: dict[tuple[str, str], set[str]] = {}
        async with self.db.execute("SELECT community, account, region FROM regions") as cur:
            async for row in cur:
                regions.setdefault((row[0], row[1]), set()).add(row[2])
        standings: dict[tuple[str, str], set[str]] = {}
        async with self.db.execute("SELECT community, account, standing FROM standings WHERE held = 1") as cur:
            async for row in cur:
                standings.setdefault((row[0], row[1]), set()).add(row[2])
        async with self.db.execute("SELECT * FROM accounts") as cur:
            async for row in cur:
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
            # Contact edges are no longer loaded here: the state reads them per source from the store
            # (contacts_from), so start-up memory does not grow with millions of stored edges.
            # A day back from the slowest community's clock: each community's own notice history.
            async with self.db.execute(
                "SELECT MIN(json_extract(value, '$')) FROM detector_memory WHERE detector = 'engine.clock'"
            ) as cur:
                row = await cur.fetchone()
            slowest = min(snap.watermark_at, _dt(row[0]) or snap.watermark_at) if row else snap.watermark_at
            day_ago = (slowest - timedelta(days=1)).isoformat()
            async with self.db.execute(
                "SELECT community, child, suspect, at, stage FROM notices WHERE at >= ? ORDER BY at", (day_ago,)
            ) as cur:
                snap.notices = [(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4]) for r in await cur.fetchall()]
        async with self.db.execute("SELECT * FROM cases WHERE status IN ('open', 'escalated', 'confirmed')") as cur:
            snap.cases = [Case.from_row(row) for row in await cur.fetchall()]
        async with self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM cases") as cur:
            row = await cur.fetchone()
            snap.next_case_id = int(row[0]) if row else 1
        async with self.db.execute(
            "SELECT community, suspect, SUM(dismissals) FROM cases GROUP BY community, suspect HAVING SUM(dismissals) > 0"
        ) as cur:
            snap.dismissals = {(r[0], r[1]): int(r[2]) for r in await cur.fetchall()}
        return snap

    async def commit_batch(self, batch: BatchWrite) -> None:
        """Write one processed batch atomically: state rows, cases, findings, outbox, watermark."""
        db = self.db
        statements = _batch_statements(batch)
        await db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                await db.executemany(sql, rows)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def accepted_contacts(self, community: str, account: str) -> set[str]:
        rows = self._read("SELECT b FROM accepted WHERE community = ? AND a = ?", (community, account))
        return {row[0] for row in rows}

    # -- detector reads (groomguard.state.StateReader) -------------------------------------------

    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]:
        """First contacts `source` started since `since`, plus its stored edges to `targets` of any age."""
        # The unary + keeps SQLite on the primary key (one source's edges), never the community-wide time index.
        sql = "SELECT target, kind, first_at, event_key FROM contacts WHERE community = ? AND source = ? AND (+first_at >= ?"
        args: list[Any] = [community, source, since.isoformat()]
        if targets:
            sql += f" OR target IN ({','.join('?' * len(targets))})"
            args.extend(targets)
        rows = self._read(sql + ")", args)
        return [ContactEdge(source, row[0], row[1], datetime.fromisoformat(row[2]), row[3]) for row in rows]

    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]:
        """Answerable requests `source` sent since `since`, with their status so far (primary-key range only)."""
        rows = self._read(
            "SELECT target, request_id, kind, requested_at, status, answered_at, event_key FROM requests "
            "WHERE community = ? AND source = ? AND +requested_at >= ?",
            (community, source, since.isoformat()),
        )
        return [RequestRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], _dt(r[5]), r[6]) for r in rows]

    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]:
        """(hour, views of minors' content, all views) for one viewer since `from_hour`."""
        rows = self._read(
            "SELECT hour, to_minors, total FROM views WHERE community = ? AND viewer = ? AND hour >= ? ORDER BY hour",
            (community, viewer, from_hour),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def viewer_minor_authors(self, community: str, viewer: str, hour: int) -> set[str]:
        rows = self._read(
            "SELECT author FROM view_authors WHERE community = ? AND viewer = ? AND hour = ?",
            (community, viewer, hour),
        )
        return {r[0] for r in rows}

    async def community_view_buckets(self, community: str, from_hour: int) -> list[tuple[int, int, int]]:
        """(hour, views of minors' content, all views) summed over the community since `from_hour`."""
        rows = self._read(
            "SELECT hour, SUM(to_minors), SUM(total) FROM views WHERE community = ? AND hour >= ? GROUP BY hour",
            (community, from_hour),
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    # -- detector memory (groomguard.memory.MemoryReader) ---------------------------------------

    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None:
        rows = self._read(
            "SELECT value, accounts, expires_at FROM detector_memory WHERE detector = ? AND community = ? AND key = ?",
            (detector, community, key),
        )
        if not rows:
            return None
        value, accounts, expires = rows[0]
        return MemoryRow(detector, community, key, value, tuple(json.loads(accounts)), _dt(expires))

    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]:
        rows = self._read(
            "SELECT detector, community, key, value, accounts, expires_at FROM detector_memory "
            "WHERE substr(detector, 1, ?) = ? ORDER BY detector, community, key",
            (len(detector_prefix), detector_prefix),
        )
        return [MemoryRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), _dt(r[5])) for r in rows]

    async def purge_memory(self, before: datetime) -> int:
        """Delete memory rows that expired before `before` (they are already hidden from detectors)."""
        cur = await self.db.execute(
            "DELETE FROM detector_memory WHERE expires_at IS NOT NULL AND expires_at < ?", (before.isoformat(),)
        )
        return max(0, cur.rowcount)

    async def accepted_degree(self, community: str, account: str) -> int:
        """How many accounts `account` has accepted contact with (the hub rule's degree)."""
        rows = self._read("SELECT COUNT(*) FROM accepted WHERE community = ? AND a = ?", (community, account))
        return int(rows[0][0]) if rows else 0

    async def message_author(self, community: str, message_id: str) -> str | None:
        rows = self._read(
            "SELECT author FROM message_turns WHERE community = ? AND message_id = ?", (community, message_id)
        )
        return str(rows[0][0]) if rows else None

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        """The newest `limit` group messages in `conversation` since `since`, oldest first."""
        rows = self._read(
            "SELECT author, at, message_id FROM message_turns WHERE community = ? AND conversation = ? AND at >= ? "
            "ORDER BY at DESC LIMIT ?",
            (community, conversation, since.isoformat(), limit),
        )
        return [Turn(r[0], datetime.fromisoformat(r[1]), r[2]) for r in reversed(rows)]

    # -- outbox ---------------------------------------------------------------------------

    async def pending_actions(self) -> list[ActionT]:
        async with self.db.execute(
            "SELECT payload FROM actions WHERE delivered_at IS NULL ORDER BY created_at, id"
        ) as cur:
            return [ACTION_ADAPTER.validate_json(row[0]) for row in await cur.fetchall()]

    async def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        if action_ids:
            await self.db.executemany(
                "UPDATE actions SET delivered_at = ? WHERE id = ?", [(at.isoformat(), i) for i in action_ids]
            )

    # -- cases and audit ------------------------------------------------------------------

    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT id, platform, community, suspect, status, risk, opened_at, updated_at, alert_version FROM cases"
        args: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        sql += " ORDER BY risk DESC, id LIMIT ?"
        async with self.db.execute(sql, (*args, limit)) as cur:
            return [dict(row) for row in await cur.fetchall()]

    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None:
        async with self.db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with self.db.execute(
            "SELECT detector, score, reason, evidence, child, at FROM findings WHERE case_id = ? ORDER BY id",
            (case_id,),
        ) as cur:
            findings = [dict(r) for r in await cur.fetchall()]
        async with self.db.execute(
            "SELECT at, actor, action, detail FROM audit WHERE case_id = ? ORDER BY id", (case_id,)
        ) as cur:
            audit = [dict(r) for r in await cur.fetchall()]
        return Case.from_row(row), findings, audit

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
            "INSERT INTO audit (at, actor, action, community, case_id, detail) VALUES (?,?,?,?,?,?)",
            (at.isoformat(), actor, action, community, case_id, json.dumps(detail)),
        )

    # -- one-time sign-in links of the web case view (groomguard.app.web) ---------------------------

    async def put_web_link(self, digest: str, moderator: str, expires_at: datetime) -> None:
        """Keep a one-time link by the SHA-256 of its token (the token itself is never stored)."""
        await self.db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?)",
            (WEB_LINK + digest, json.dumps({"moderator": moderator, "expires_at": expires_at.isoformat()})),
        )

    async def take_web_link(self, digest: str, now: datetime) -> str | None:
        """Use a link once: delete it and return its moderator, or None (unknown, used or expired)."""
        async with self.db.execute("DELETE FROM meta WHERE name = ? RETURNING value", (WEB_LINK + digest,)) as cur:
            row = await cur.fetchone()
        async with self.db.execute(
            "SELECT name, value FROM meta WHERE substr(name, 1, ?) = ?", (len(WEB_LINK), WEB_LINK)
        ) as cur:
            stale = [
                r[0] for r in await cur.fetchall() if datetime.fromisoformat(json.loads(r[1])["expires_at"]) <= now
            ]
        if stale:
            await self.db.executemany("DELETE FROM meta WHERE name = ?", [(n,) for n in stale])
        if row is None:
            return None
        link = json.loads(row[0])
        return str(link["moderator"]) if datetime.fromisoformat(link["expires_at"]) > now else None

    # -- privacy --------------------------------------------------------------------------

    async def forget(self, account: str, community: str | None = None) -> dict[str, int]:
        """Erase one account's data everywhere it is stored; returns rows removed per table."""
        scope, args = ("community = ? AND ", (community,)) if community else ("", ())
        removed: dict[str, int] = {}
        statements = {
            "events": (
                "DELETE FROM events WHERE "
                + scope
                + "(json_extract(body, '$.account') = ? OR json_extract(body, '$.source') = ? "
                "OR json_extract(body, '$.target') = ? OR json_extract(body, '$.author') = ? OR json_extract(body, '$.viewer') = ? "
                "OR json_extract(body, '$.moderator') = ? OR json_extract(body, '$.reply_to_author') = ? "
                "OR EXISTS (SELECT 1 FROM json_each(body, '$.recipients') WHERE value = ?) "
                "OR EXISTS (SELECT 1 FROM json_each(body, '$.mentions') WHERE value = ?))",
                9,
            ),
            "accounts": ("DELETE FROM accounts WHERE " + scope + "account = ?", 1),
            "regions": ("DELETE FROM regions WHERE " + scope + "account = ?", 1),
            "contacts": ("DELETE FROM contacts WHERE " + scope + "(source = ? OR target = ?)", 2),
            "requests": ("DELETE FROM requests WHERE " + scope + "(source = ? OR target = ?)", 2),
            "accepted": ("DELETE FROM accepted WHERE " + scope + "(a = ? OR b = ?)", 2),
            "views": ("DELETE FROM views WHERE " + scope + "viewer = ?", 1),
            "view_authors": ("DELETE FROM view_authors WHERE " + scope + "(viewer = ? OR author = ?)", 2),
            "messages": ("DELETE FROM messages WHERE " + scope + "author = ?", 1),
            "standings": ("DELETE FROM standings WHERE " + scope + "account = ?", 1),
            "message_turns": ("DELETE FROM message_turns WHERE " + scope + "author = ?", 1),
            "notices": ("DELETE FROM notices WHERE " + scope + "(child = ? OR suspect = ?)", 2),
            "findings": ("DELETE FROM findings WHERE " + scope + "(suspect = ? OR child = ?)", 2),
            "cases": ("DELETE FROM cases WHERE " + scope + "suspect = ?", 1),
            "detector_memory": (
                "DELETE FROM detector_memory WHERE "
                + scope
                + "(key = ? OR EXISTS (SELECT 1 FROM json_each(accounts) WHERE value = ?))",
                2,
            ),
        }
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            async with self.db.execute("SELECT id FROM cases WHERE " + scope + "suspect = ?", (*args, account)) as cur:
                case_ids = [r[0] for r in await cur.fetchall()]
            if case_ids:
                marks = ",".join("?" * len(case_ids))
                cur2 = await self.db.execute(f"DELETE FROM findings WHERE case_id IN ({marks})", case_ids)
                removed["findings"] = cur2.rowcount
                cur2 = await self.db.execute(f"DELETE FROM actions WHERE case_id IN ({marks})", case_ids)
                removed["actions"] = cur2.rowcount
            for table, (sql, n) in statements.items():
                cur2 = await self.db.execute(sql, (*args, *([account] * n)))
                removed[table] = removed.get(table, 0) + max(0, cur2.rowcount)
            # Anything else that names the account as a JSON string: outbox payloads (alert cards list
            # the children), other suspects' case and finding evidence, and audit details.
            token = json.dumps(account)
            action_scope = "json_extract(payload, '$.community') = ? AND " if community else ""
            cur2 = await self.db.execute(
                "DELETE FROM actions WHERE " + action_scope + "(subject = ? OR instr(payload, ?) > 0)",
                (*args, account, token),
            )
            removed["actions"] = removed.get("actions", 0) + max(0, cur2.rowcount)
            async with self.db.execute(
                "SELECT id, children, reasons FROM cases WHERE "
                + scope
                + "(instr(children, ?) > 0 OR instr(reasons, ?) > 0)",
                (*args, token, token),
            ) as cur:
                for row in await cur.fetchall():
                    kids = [k for k in json.loads(row[1]) if k != account]
                    extra = json.loads(row[2])
                    for reason in extra.get("reasons", {}).values():
                        reason["evidence"] = [e for e in reason.get("evidence", []) if e.get("ref") != account]
                    await self.db.execute(
                        "UPDATE cases SET children = ?, reasons = ? WHERE id = ?",
                        (json.dumps(kids), json.dumps(extra), row[0]),
                    )
            async with self.db.execute(
                "SELECT id, evidence FROM findings WHERE " + scope + "instr(evidence, ?) > 0", (*args, token)
            ) as cur:
                for row in await cur.fetchall():
                    kept = [e for e in json.loads(row[1]) if e.get("ref") != account]
                    await self.db.execute("UPDATE findings SET evidence = ? WHERE id = ?", (json.dumps(kept), row[0]))
            cur2 = await self.db.execute(
                "UPDATE audit SET detail = '{\"redacted\": true}' WHERE " + scope + "instr(detail, ?) > 0",
                (*args, token),
            )
            removed["audit (redacted)"] = max(0, cur2.rowcount)
            for table, n in (await self._sweep(account, community)).items():
                removed[table] = removed.get(table, 0) + n
            await self.db.execute(
                "INSERT INTO audit (at, actor, action, community, detail) VALUES (?,?,?,?,?)",
                (
                    datetime.now(UTC).isoformat(),
                    "groomguard",
                    "forget",
                    community,
                    json.dumps({"rows": sum(removed.values())}),
                ),
            )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self._checkpoint()
        return {k: v for k, v in removed.items() if v}

    async def _sweep(self, account: str, community: str | None) -> dict[str, int]:
        """Find the id in every column of every table (adapters' tables too) and remove it.

        The targeted deletes above know which columns name accounts; this catches the rest: the id
        inside conversation ids, request refs, reasons ("friend to kid5 on ..."), cards and payloads.
        Raw events naming it are deleted; rows with a column equal to it are deleted; elsewhere (other
        suspects' cases, findings, audit, cards) the id is replaced by "[erased]" and the row kept.
        """
        removed: dict[str, int] = {}
        async with self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('schema_version', 'meta') "
            "AND name NOT LIKE 'sqlite_%'"
        ) as cur:
            tables = [r[0] for r in await cur.fetchall()]
        keep = {"cases", "findings", "audit"}
        for table in tables:
            async with self.db.execute(f'PRAGMA table_info("{table}")') as cur:
                info = await cur.fetchall()
            columns = [r[1] for r in info]
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
            if community is not None and "community" not in columns:
                continue  # a community-scoped erasure cannot tell which community these rows belong to
            ident = pk or ["rowid"]
            marks = " OR ".join(f'instr(CAST("{c}" AS TEXT), ?) > 0' for c in columns for _ in needles(account))
            args: list[Any] = [n for _ in columns for n in needles(account)]
            sql = f'SELECT {", ".join(ident)}, * FROM "{table}" WHERE ({marks})'
            if community is not None:
                sql += " AND community = ?"
                args.append(community)
            async with self.db.execute(sql, args) as cur:
                rows = await cur.fetchall()
            where = " AND ".join(f'"{c}" IS ?' if c != "rowid" else "rowid = ?" for c in ident)
            for row in rows:
                key, values = tuple(row[: len(ident)]), dict(zip(columns, row[len(ident) :], strict=True))
                texts = {c: str(v) for c, v in values.items() if v is not None}
                if not any(mentions(t, account) for t in texts.values()):
                    continue  # only inside a longer id ("kid50" for "kid5"): someone else's
                if table not in keep and (table == "events" or account in texts.values()):
                    await self.db.execute(f'DELETE FROM "{table}" WHERE {where}', key)
                    removed[table] = removed.get(table, 0) + 1
                    continue
                changed = {
                    c: scrub(v, account) for c, v in values.items() if isinstance(v, str) and mentions(v, account)
                }
                sets = ", ".join(f'"{c}" = ?' for c in changed)
                await self.db.execute(
                    f'UPDATE OR REPLACE "{table}" SET {sets} WHERE {where}', (*changed.values(), *key)
                )
                removed[f"{table} (scrubbed)"] = removed.get(f"{table} (scrubbed)", 0) + 1
        return removed

    async def _checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so erased rows leave no copy in the -wal file."""
        async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            row = await cur.fetchone()
        if row is not None and row[0]:
            log.warning(
                "WAL checkpoint after erasure was blocked by a reader; the -wal file is cleared on the next one"
            )

    async def purge_expired(self, now: datetime, message_days: int, event_days: int) -> dict[str, int]:
        """Delete message text and raw events past their retention period."""
        out = {}
        cur = await self.db.execute(
            "DELETE FROM messages WHERE at < ?", ((now - timedelta(days=message_days)).isoformat(),)
        )
        out["messages"] = cur.rowcount
        cur = await self.db.execute(
            "DELETE FROM message_turns WHERE at < ?", ((now - timedelta(days=message_days)).isoformat(),)
        )
        out["message_turns"] = cur.rowcount
        watermark = int(await self._meta("watermark") or 0)
        # Never delete unprocessed events: they are still owed to the detectors.
        cur = await self.db.execute(
            "DELETE FROM events WHERE at < ? AND seq <= ?", ((now - timedelta(days=event_days)).isoformat(), watermark)
        )
        out["events"] = cur.rowcount
        # Distinct-author rows only serve the current hour's spike check; two days is plenty.
        cur = await self.db.execute("DELETE FROM view_authors WHERE hour < ?", (int(now.timestamp()) // 3600 - 48,))
        out["view_authors"] = cur.rowcount
        # Raw events outlive message text: blank the text inside older message bodies too.
        cur = await self.db.execute(
            "UPDATE events SET body = json_set(body, '$.text', '') WHERE type IN ('message_sent', 'message_edited') "
            "AND at < ? AND json_extract(body, '$.text') != ''",
            ((now - timedelta(days=message_days)).isoformat(),),
        )
        out["event_text"] = cur.rowcount
        return out

    def tables(self) -> SqliteDatabase:
        """A connection of its own to this database file, for an adapter's tables (see groomguard.store.db)."""
        return SqliteDatabase(self.path)

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
            async with self.db.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                row = await cur.fetchone()
                out[table] = int(row[0]) if row else 0
        return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _subject(action: ActionT) -> str:
    return getattr(action, "suspect", None) or getattr(action, "child", "")


#: WAL size past which `checkpoint_if_due` checkpoints (SQLite's own auto-checkpoint is at ~4 MB).
CHECKPOINT_WAL_BYTES = 16 * 1024 * 1024
#: Bound parameters per multi-row INSERT (see `_write_statements`); SQLite allows 32,766 since 3.32.
MAX_PARAMS = 32_000
_VALUES = re.compile(r"VALUES \((\?(?:,\?)*)\)")


def _write_statements(con: sqlite3.Connection, statements: list[tuple[str, Sequence[Any]]]) -> None:
    """Run (statement, rows) pairs on the writer thread, INSERTs as multi-row statements.

    `executemany` steps SQLite once per row and gives the GIL back around every step; while the event
    loop's thread is busy each step then waits for the GIL again (up to the 5 ms switch interval), so
    a writer behind busy processing crawls. One INSERT with many VALUES rows is one step.
    """
    for sql, rows in statements:
        match = _VALUES.search(sql) if sql.startswith("INSERT") else None
        if match is None or len(rows) < 2:
            con.executemany(sql, rows)
            continue
        rows = rows if isinstance(rows, list) else list(rows)
        # As few statements as SQLite's bound-parameter limit allows: each one is a GIL round trip.
        per = max(1, MAX_PARAMS // (match.group(1).count("?")))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            # This thread holds the GIL while it builds a statement, and the event loop's reads wait for
            # it: the text comes from a cache and the parameters are flattened in C.
            con.execute(_multi_row(sql, match, len(chunk)), list(chain.from_iterable(chunk)))


@functools.lru_cache(maxsize=256)
def _multi_row_text(sql: str, start: int, end: int, group: str, count: int) -> str:
    return sql[:start] + "VALUES " + ",".join([group] * count) + sql[end:]


def _multi_row(sql: str, match: re.Match[str], count: int) -> str:
    return _multi_row_text(sql, match.start(), match.end(), f"({match.group(1)})", count)


def _batch_statements(batch: BatchWrite) -> list[tuple[str, Sequence[Any]]]:
    """The (statement, rows) pairs that write one processed batch, in order; run inside one transaction."""
    s = batch.state
    out: list[tuple[str, Sequence[Any]]] = []

    def add(sql: str, rows: Sequence[Any]) -> None:
        out.append((sql, rows))

    if s.accounts:
        add(
            "INSERT OR REPLACE INTO accounts VALUES (?,?,?,?,?,?,?,?)",
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
    if s.regions:
        add("INSERT OR IGNORE INTO regions VALUES (?,?,?)", s.regions)
    if s.contacts:
        add("INSERT OR IGNORE INTO contacts VALUES (?,?,?,?,?,?)", s.contacts)
    if s.requests:
        add(
            "INSERT OR IGNORE INTO requests (community, source, target, request_id, kind, requested_at, event_key) VALUES (?,?,?,?,?,?,?)",
            s.requests,
        )
    if s.answers:
        add(
            "UPDATE requests SET status = ?, answered_at = ? WHERE community = ? AND source = ? AND target = ? AND request_id = ? AND status = 'pending'",
            s.answers,
        )
    if s.accepted:
        add("INSERT OR IGNORE INTO accepted VALUES (?,?,?,?)", s.accepted)
    if s.view_authors:
        add("INSERT OR IGNORE INTO view_authors VALUES (?,?,?,?)", sorted(s.view_authors))
    if s.views:
        add(
            "INSERT INTO views VALUES (?,?,?,?,?) ON CONFLICT (community, viewer, hour) DO UPDATE SET to_minors = to_minors + excluded.to_minors, total = total + excluded.total",
            [(c, v, h, n[0], n[1]) for (c, v, h), n in s.views.items()],
        )
    if s.conversations:
        add(
            "INSERT INTO conversations VALUES (?,?,?,?,?,?) ON CONFLICT (community, conversation) DO UPDATE SET last_at = excluded.last_at, messages = messages + excluded.messages",
            [(c, conv, int(v[0]), v[1], v[2], v[3]) for (c, conv), v in s.conversations.items()],
        )
    if s.messages:
        add("INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?)", s.messages)
    if s.edited_messages:
        add("UPDATE messages SET text = ? WHERE community = ? AND message_id = ?", s.edited_messages)
    if s.deleted_messages:
        add("DELETE FROM messages WHERE community = ? AND message_id = ?", s.deleted_messages)
    if s.standings:
        add("INSERT OR REPLACE INTO standings VALUES (?,?,?,?,?)", s.standings)
    if s.turns:
        add("INSERT OR IGNORE INTO message_turns VALUES (?,?,?,?,?)", s.turns)
    if s.deleted_messages:
        add("DELETE FROM message_turns WHERE community = ? AND message_id = ?", s.deleted_messages)
    if batch.cases:
        add(
            "INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                case.to_row(batch.clocks.get(case.community, batch.watermark_at), batch.half_life_hours)
                for case in batch.cases
            ],
        )
    if batch.findings:
        add(
            "INSERT INTO findings (case_id, detector, community, suspect, score, reason, evidence, child, at, event_key) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    f.at.isoformat(),
                    f.event_key,
                )
                for cid, f in batch.findings
            ],
        )
    if batch.actions:
        add(
            "INSERT OR IGNORE INTO actions (id, kind, case_id, subject, created_at, payload) VALUES (?,?,?,?,?,?)",
            [
                (
                    a.action_id,
                    a.kind,
                    getattr(a, "case_id", None),
                    _subject(a),
                    a.at.isoformat(),
                    a.model_dump_json(),
                )
                for a in batch.actions
            ],
        )
    if batch.notices:
        add("INSERT INTO notices (community, child, suspect, at, stage) VALUES (?,?,?,?,?)", batch.notices)
    if batch.audit:
        add(
            "INSERT INTO audit (at, actor, action, community, case_id, detail) VALUES (?,?,?,?,?,?)",
            [(a.at.isoformat(), a.actor, a.action, a.community, a.case_id, json.dumps(a.detail)) for a in batch.audit],
        )
    if batch.memory:
        gone = [(r.detector, r.community, r.key) for r in batch.memory if r.value is None]
        kept = [
            (r.detector, r.community, r.key, r.value, json.dumps(r.accounts), _iso(r.expires_at))
            for r in batch.memory
            if r.value is not None
        ]
        if gone:
            add("DELETE FROM detector_memory WHERE detector = ? AND community = ? AND key = ?", gone)
        if kept:
            add("INSERT OR REPLACE INTO detector_memory VALUES (?,?,?,?,?,?)", kept)
    add(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        [("watermark", str(batch.watermark)), ("watermark_at", batch.watermark_at.isoformat())],
    )
    return out
