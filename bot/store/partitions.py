"""Partitioned processing on PostgreSQL: communities hash to partitions that engine processes lease.

Every community belongs to one of a fixed number of partitions (`partition_of`: SHA-256 of the community
id, so every process and the SQL backfill agree). A partition is a row in `partitions` (migration 007)
with its owner, the lease's expiry (the database's clock, never a process's), a watermark (the highest
event seq of that partition whose processing is committed) and a count of events processed.

* Each engine process is a **member** (`engine_members`, renewed with its leases) and holds leases on a
  fair share of the partitions: ceil(partitions / live members). A member holding more releases the
  excess at a batch boundary; a member holding fewer takes free or expired partitions. So a new process
  gets its share within a few heartbeats, and the partitions of a process that died (its leases expire
  `lease_s` after its last renewal) are taken over by the others in-process.
* A process processes only events of the partitions it holds, in seq order per partition, from each
  partition's watermark (`due`). Appends are serialised (APPEND_LOCK in groomguard.store.postgres) so a
  partition's events become visible in seq order and none can slip under a watermark.
* Every processed batch commits with `fence` as its first statement: it locks the batch's partition
  rows, moves their watermarks, and refuses (`groomguard.storage.StaleLease`, the whole transaction rolls
  back) unless this process still holds every one of those leases. A lease taken over by another process
  therefore never sees a commit from the old owner, and the new owner reads the watermark the old one
  committed last: no event is processed twice or skipped.
* Leases are renewed on a connection of their own, so a long batch commit never delays a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import asyncpg
from groomguard.events import BaseEvent, EventError, parse_event
from groomguard.storage import StaleLease

log = logging.getLogger(__name__)

#: Partitions when the settings name none: 16 lets up to 16 processes share the work evenly enough.
DEFAULT_PARTITIONS = 16
#: Advisory lock held while the partition rows are created or checked (two engines opening together).
SETUP_LOCK = 0x4747_0004


def stored_text(value: str) -> str:
    """`value` as the store keeps it (PostgreSQL text cannot hold NUL; see groomguard.store.postgres)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def partition_of(community: str, count: int) -> int:
    """The partition of a community: the first 4 bytes of SHA-256 of its stored id, modulo `count`."""
    digest = hashlib.sha256(stored_text(community).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % count


def partition_sql(column: str, count: int) -> str:
    """The same hash in SQL (for rows stored before migration 007)."""
    return f"((('x' || substr(encode(sha256(convert_to({column}, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint) % {int(count)})"


def fair_share(partitions: int, members: int) -> int:
    """How many partitions one of `members` live processes should hold."""
    return math.ceil(partitions / max(1, members))


class CaseIds:
    """Case ids per partition: id = k * count + partition + 1, so processes never collide and a takeover
    continues a partition's numbering exactly where its last committed case left it."""

    def __init__(self, count: int, highest: dict[int, int]) -> None:
        self.count = count
        self._next = {p: top + count for p, top in highest.items()}

    def __call__(self, community: str) -> int:
        part = partition_of(community, self.count)
        case_id = self._next.get(part, part + 1)
        self._next[part] = case_id + self.count
        return case_id


class Partitions:
    """This process's side of the partitions: which it holds, what it handed out, its leases and heartbeat."""

    def __init__(self, url: str, count: int, lease_s: float, *, process: bool = True) -> None:
        self.url = url
        self.count = count
        self.lease_s = lease_s
        #: Renew this often: three renewals can fail before a lease runs out.
        self.heartbeat_s = lease_s / 4
        #: False for a store-only process: it never joins as a member nor takes a lease.
        self.process = process
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        #: Partitions held -> highest seq handed to the engine for processing.
        self.held: dict[int, int] = {}
        #: What was handed since the last commit: partition -> (highest seq, events, latest event time).
        self._marks: dict[int, tuple[int, int, datetime]] = {}
        #: Partitions whose lease ran out under us (a renewal found it gone): the engine must rebuild memory.
        self._lost: set[int] = set()
        #: Stored events `due` skipped because this version cannot read their body (logged each).
        self.unreadable = 0
        #: A member counts towards the fair share; a process joins by running lease rounds (LogFollower), so a
        #: one-shot tool with a store open (a replay) never makes the others hand it partitions it won't take.
        self.joined = False
        self._con: asyncpg.Connection | None = None
        self._con_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def setup(self, db: asyncpg.Connection) -> None:
        """Create the partition rows on first use (watermarks from the single-processor era's), backfill old events."""
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
            stored = await db.fetchval("SELECT value FROM meta WHERE name = 'partitions'")
            if stored is None:
                # Before 007 one engine processed everything up to meta's watermark.
                mark = int(
                    await db.fetchval("SELECT COALESCE(MAX(value::bigint), 0) FROM meta WHERE name = 'watermark'")
                )
                await db.execute("DELETE FROM partitions")
                await db.executemany(
                    "INSERT INTO partitions (part, watermark) VALUES ($1, $2)", [(p, mark) for p in range(self.count)]
                )
                await db.execute("INSERT INTO meta VALUES ('partitions', $1)", str(self.count))
                # Rows stored before 007 get their partition once, by the same hash in SQL.
                await db.execute(
                    f"UPDATE events SET part = {partition_sql('community', self.count)} WHERE part IS NULL"
                )
            elif int(stored) != self.count:
                from groomguard.store.postgres import PostgresStoreError

                raise PostgresStoreError(
                    f"store.partitions is {self.count} but this database was partitioned {stored} ways: set "
                    f"store.partitions = {stored} (changing it needs every engine stopped and the log fully processed)"
                )

    async def start(self) -> None:
        """Open the lease connection, take a first share of what is free and start renewing."""
        if not self.process:
            return
        self._con = await asyncpg.connect(self.url)
        await self._round(join=False)
        self._task = asyncio.create_task(self._heartbeat(), name="groomguard-partition-leases")

    async def close(self) -> None:
        """Stop renewing and hand every lease back at once (a clean stop needs no expiry to be taken over)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(Exception):
                await con.execute("UPDATE partitions SET owner = NULL, expires_at = NULL WHERE owner = $1", self.owner)
                await con.execute("DELETE FROM engine_members WHERE owner = $1", self.owner)
            with contextlib.suppress(Exception):
                await con.close()
        self.held = {}
        self._marks = {}

    async def abandon(self, keep_connection: bool = False) -> None:
        """Stop renewing without handing anything back: as a stalled process would (`keep_connection`), or one
        killed outright. For tests and kill drills."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not keep_connection and self._con is not None:
            self._con.terminate()
            self._con = None

    # -- leases ---------------------------------------------------------------------------

    @property
    def con(self) -> asyncpg.Connection:
        if self._con is None:
            raise RuntimeError("partition leases are not open")
        return self._con

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.renew()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                log.exception("partition lease renewal failed; retrying (leases run out after %.0f s)", self.lease_s)
                await self._reconnect()

    async def _reconnect(self) -> None:
        """Open the lease connection again if the server dropped it; leases that ran out meanwhile are found
        gone by the next renewal and taken again by a lease round, with memory rebuilt."""
        async with self._con_lock:
            if self._con is None or not self._con.is_closed():
                return
            try:
                self._con = await asyncpg.connect(self.url)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                log.warning("partition leases: cannot reconnect yet (%s); trying again", error)
                return
        log.warning("partition leases: the connection was lost and is open again")

    async def renew(self) -> None:
        """Extend this member's row and every lease it still holds; a lease found gone is dropped here."""
        async with self._con_lock, self.con.transaction():
            if self.joined:
                await self._member()
            rows = await self.con.fetch(
                "UPDATE partitions SET expires_at = now() + make_interval(secs => $2) "
                "WHERE owner = $1 AND expires_at > now() RETURNING part",
                self.owner,
                self.lease_s,
            )
        kept = {int(r[0]) for r in rows}
        gone = set(self.held) - kept
        if gone:
            log.warning("partition leases %s ran out before renewal: another engine may process them now", sorted(gone))
            for part in gone:
                del self.held[part]
            self._lost |= gone

    async def _member(self) -> None:
        await self.con.execute(
            "INSERT INTO engine_members (owner, expires_at) VALUES ($1, now() + make_interval(secs => $2)) "
            "ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
            self.owner,
            self.lease_s,
        )

    async def rebalance(self) -> bool:
        """Join as a member (first call), release partitions beyond the fair share, take free or expired ones up
        to it; True when the set changed.

        Call it only between batches (the engine's writer lock): what it releases must not be in a batch
        being processed, and what it takes must not be processed before memory is rebuilt from the store.
        """
        return await self._round(join=True)

    async def _round(self, join: bool) -> bool:
        if not self.process or self._con is None:
            return False
        changed = bool(self._lost)
        self._lost = set()
        async with self._con_lock:
            if join and not self.joined:
                await self._member()
                self.joined = True
            others = int(
                await self.con.fetchval(
                    "SELECT COUNT(*) FROM engine_members WHERE expires_at > now() AND owner <> $1", self.owner
                )
            )
            members = others + 1
            share = fair_share(self.count, members)
            if len(self.held) > share:
                # Keep the lowest numbers, hand back the highest: deterministic, and a joiner takes those.
                excess = sorted(self.held)[share:]
                await self.con.execute(
                    "UPDATE partitions SET owner = NULL, expires_at = NULL WHERE owner = $1 AND part = ANY($2::int[])",
                    self.owner,
                    excess,
                )
                for part in excess:
                    del self.held[part]
                log.info(
                    "released partitions %s (fair share %d of %d over %d engines)", excess, share, self.count, members
                )
                changed = True
            elif len(self.held) < share:
                # SKIP LOCKED: a row locked by its old owner's committing batch is taken on a later round,
                # after that commit, with the watermark it wrote.
                rows = await self.con.fetch(
                    "UPDATE partitions SET owner = $1, expires_at = now() + make_interval(secs => $2) WHERE part IN "
                    "(SELECT part FROM partitions WHERE owner IS NULL OR expires_at IS NULL OR expires_at <= now() "
                    "ORDER BY part LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING part, watermark",
                    self.owner,
                    self.lease_s,
                    share - len(self.held),
                )
                for row in rows:
                    self.held[int(row[0])] = int(row[1])
                if rows:
                    log.info(
                        "took partitions %s (now %d of %d)", sorted(int(r[0]) for r in rows), len(self.held), self.count
                    )
                    changed = True
        return changed

    # -- processing -----------------------------------------------------------------------

    def owns(self, community: str) -> bool:
        return partition_of(community, self.count) in self.held

    def keep(self, rows: Iterable[Any], community: Callable[[Any], str]) -> list[Any]:
        """The rows whose community is in a partition this process holds."""
        return [row for row in rows if self.owns(community(row))]

    async def due(self, db: asyncpg.Connection, limit: int) -> list[tuple[int, BaseEvent]]:
        """The next `limit` events of the held partitions past what was handed out, in seq order."""
        if not self.held:
            return []
        parts = sorted(self.held)
        # Per partition its first `limit` due events (one index range each), then the first `limit` overall:
        # each partition's share of the result is a prefix of its due events, so marks stay exact.
        rows = await db.fetch(
            "SELECT e.seq, e.part, e.body FROM unnest($1::int[], $2::bigint[]) AS h(part, after) "
            "CROSS JOIN LATERAL (SELECT seq, part, body FROM events WHERE part = h.part AND seq > h.after "
            "ORDER BY seq LIMIT $3) AS e ORDER BY e.seq LIMIT $3",
            parts,
            [self.held[p] for p in parts],
            limit,
        )
        out = []
        for seq, part, body in rows:
            if part not in self.held:
                continue  # its lease was found gone while this read ran (`renew`): not ours to process
            self.held[part] = max(self.held[part], int(seq))
            try:
                event = parse_event(body)
            except EventError as error:
                # A body this version refuses (stored by an older one): one event skipped, not the partition.
                self.unreadable += 1
                log.error("stored event %d (partition %d) cannot be read, skipped: %s", seq, part, error.reason)
                continue
            out.append((int(seq), event))
            top, n, at = self._marks.get(part, (0, 0, event.at))
            self._marks[part] = (max(top, int(seq)), n + 1, max(at, event.at))
        return out

    async def fence(self, db: asyncpg.Connection) -> None:
        """First statement of a batch's transaction: lock and advance the batch's partitions, or refuse the batch."""
        marks, self._marks = self._marks, {}
        if not marks:
            return
        parts = sorted(marks)
        rows = await db.fetch(
            "UPDATE partitions AS p SET watermark = GREATEST(p.watermark, m.seq), "
            "watermark_at = GREATEST(COALESCE(p.watermark_at, ''), m.at), "
            "processed = p.processed + m.n FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::text[]) "
            "AS m(part, seq, n, at) WHERE p.part = m.part AND p.owner = $5 AND p.expires_at > now() RETURNING p.part",
            parts,
            [marks[p][0] for p in parts],
            [marks[p][1] for p in parts],
            [marks[p][2].isoformat() for p in parts],
            self.owner,
        )
        if len(rows) != len(parts):
            missing = sorted(set(parts) - {int(r[0]) for r in rows})
            for part in missing:
                self.held.pop(part, None)
            self._lost |= set(missing)
            raise StaleLease(f"partitions {missing} are no longer leased to this engine: batch refused, memory rebuilt")

    async def case_ids(self, db: asyncpg.Connection) -> CaseIds:
        """The case-id allocator, continuing after the highest stored id of each partition's class."""
        rows = await db.fetch("SELECT (id - 1) % $1, MAX(id) FROM cases GROUP BY 1", self.count)
        return CaseIds(self.count, {int(r[0]): int(r[1]) for r in rows})

    async def watermarks(self, db: asyncpg.Connection) -> dict[int, tuple[int, str | None]]:
        """Committed (watermark, watermark_at) of the held partitions; resets what was handed out of them.

        Memory is rebuilt only after this: a partition whose lease is found gone here is dropped first.
        """
        rows = await db.fetch(
            "SELECT part, watermark, watermark_at FROM partitions WHERE part = ANY($1::int[]) "
            "AND owner = $2 AND expires_at > now()",
            sorted(self.held),
            self.owner,
        )
        self._marks = {}
        out = {int(r[0]): (int(r[1]), r[2]) for r in rows}
        gone = set(self.held) - set(out)
        if gone:
            log.warning("partition leases %s are gone: not processing them", sorted(gone))
            self._lost |= gone
        self.held = {part: mark for part, (mark, _) in out.items()}
        return out
