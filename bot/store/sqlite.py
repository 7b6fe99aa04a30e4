"""SQLite store through aiosqlite: WAL, numbered migrations, one writer, batched transactions.

The SQL is groomguard.store.base's, shared with PostgreSQL; what is SQLite's own lives here: the pragmas
(groomguard.store.db), sequence numbers handed out by the one writer, a read-only connection that answers
detector reads on the event loop, and the WAL checkpoint that takes erased rows out of the -wal file.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import io
import logging
import os
import pickle
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from groomguard.events import BaseEvent, dump_event
from groomguard.storage import BatchWrite
from groomguard.store import writer
from groomguard.store.base import SqlStore, batch_statements, serialized
from groomguard.store.db import SqliteDatabase, read_migrations, split_sql, sqlite_positional, sqlite_sql
from groomguard.store.writer import write_statements as _write_statements

__all__ = ["SqliteStore", "StoreError", "migrations", "split_sql"]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("seq", "key", "type", "community", "at", "stored_at", "body")
INSERT_EVENTS = "INSERT INTO events (seq, key, type, community, at, stored_at, body) VALUES (?,?,?,?,?,?,?)"
#: WAL size past which `start_checkpoint` checkpoints (SQLite's own auto-checkpoint is at ~4 MB).
CHECKPOINT_WAL_BYTES = 16 * 1024 * 1024
#: Job bytes handed to the writer process since the last checkpoint before the next one is due.
CHECKPOINT_SENT_BYTES = 8 * 1024 * 1024


def migrations() -> list[tuple[int, str]]:
    """Numbered SQL files shipped in bot/store/migrations, in order."""
    return read_migrations("migrations")


class StoreError(RuntimeError):
    """The database cannot be used (locked, corrupt, unwritable); the message says which file."""


class SqliteStore(SqlStore):
    """The embedded default store; a single connection is the single writer."""

    migration_folder = "migrations"
    database: SqliteDatabase

    def __init__(self, path: Path | str, writer_process: bool = True) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path))
        #: Pipelined transactions run in a child process (groomguard.store.writer) where the kernel can
        #: tie its life to this one (Linux), else on aiosqlite's thread: "the writer" below.
        self.writer_process = writer_process and sys.platform == "linux"
        self._child: _ChildWriter | None = None
        self._ro: sqlite3.Connection | None = None
        self._next_seq = 1
        # Pipelined writes (see `submit_batch`): while reads are pinned, the read-only connection holds
        # one snapshot and writes queue behind processing on the writer.
        self._pinned = False
        #: Appended events are held for the next batch's transaction though reads are not pinned: the
        #: engine runs on while a checkpoint folds the WAL in (`release_reads(hold=True)`).
        self._holding = False
        #: `_ChildWriter.sent` at the last checkpoint.
        self._checkpointed = 0
        self._unsynced_keys: set[str] = set()
        self._jobs: list[asyncio.Future[None]] = []
        #: Event rows appended while reads are pinned, written first in the next batch's transaction.
        self._event_rows: list[tuple[Any, ...]] = []
        self._write_failure: BaseException | None = None
        #: Transactions the writer committed, and how many of them the event loop has had a turn since
        #: (see `append_events`); only the writer's thread (aiosqlite's, or the child's reply reader)
        #: moves `_commits`.
        self._commits = 0
        self._commits_seen = 0

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer's aiosqlite connection (tests and tools read through it)."""
        if self.database._db is None:
            raise StoreError("store is not open")
        return self.database._db

    async def open(self) -> None:
        try:
            await self.database.open()
            await self._migrate()
            # Sequence numbers never go backwards, even after old events are purged.
            value = await self.database.fetchval(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), "
                "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'watermark'), 0))"
            )
            self._next_seq = int(value or 0) + 1
            # Detector reads are point look-ups on a local indexed file: a second, read-only connection
            # on the event loop answers them in microseconds, where a hop to aiosqlite's thread costs
            # ~100x that. WAL lets it read committed data while the writer works; the state
            # merges the current batch's uncommitted rows itself.
            self._ro = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            if self.writer_process:
                await self._start_child()
        except (aiosqlite.Error, sqlite3.Error, OSError) as error:
            # Close the half-open connection: its worker thread would otherwise keep the process alive.
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {error}") from error

    async def _start_child(self) -> None:
        """Start the writer process; where it cannot start (an embedding host whose `sys.executable` is not
        Python, a sandbox without fork) the store writes from aiosqlite's thread, and says so once."""
        try:
            child = _ChildWriter(self.path, self._count_commit)
        except OSError as error:
            log.warning("cannot start the SQLite writer process (%s); the store writes from a thread instead", error)
            return
        try:
            await child.started()
        except OSError as error:
            await child.close()
            log.warning("%s; the store writes from a thread instead (set store.writer_process = false)", error)
            return
        self._child = child
        # aiosqlite's own statements wait for the child's queued transactions, in the order they would
        # have run on one connection.
        self.database.barrier = child.landed

    async def close(self) -> None:
        """Close both connections; appended events not yet written are written first (not their results)."""
        if self._event_rows and self._ro is not None:
            with contextlib.suppress(Exception):  # a refused write was logged by its owner; close anyway
                await self.settle()  # writes the held event rows first
        if self._ro is not None:
            self._ro.close()
            self._ro = None
        if self._child is not None:
            child, self._child = self._child, None
            self.database.barrier = None
            await child.close()
        await self.database.close()

    # -- pipelined writes ------------------------------------------------------------------
    #
    # Processing a batch and committing the one before it can overlap: the engine hands each batch's
    # writes over with `submit_batch` and goes on, and the transaction runs on the writer (the child
    # process, or aiosqlite's thread, which releases the GIL inside SQLite). Two things keep that exact. Reads are pinned to one snapshot
    # (`pin_reads`) that does not move while commits land, so the state merges everything it handed over
    # since then, as it merges one uncommitted batch; the engine calls `settle` before moving the pin.
    # And each job is one whole transaction queued in order on the one writer connection: a kill -9
    # leaves a prefix of batches committed, each with its watermark, and once one job fails every later
    # one refuses, so no watermark can move past a batch that was not written.

    @property
    def pipelined(self) -> bool:
        """Whether `submit_batch` can queue work on the writer without an await (aiosqlite's queue, or the child's)."""
        return hasattr(self.database._db, "_tx")

    def pin_reads(self) -> None:
        """Hold detector reads on the state committed now until `release_reads` (every write settled)."""
        if self._ro is None or self._pinned:
            return
        self._ro.execute("BEGIN")
        # A read transaction takes its snapshot at its first read, so take it now, not at some later read.
        self._ro.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        self._pinned = True
        self._holding = False
        # Keys appended while reads were released and held (`hold`) are not committed: they stay unsynced.

    def release_reads(self, hold: bool = False) -> None:
        """Let detector reads see every commit again (and checkpoints run to the end).

        Every write must be settled. `hold`: events appended from now on are still held for the next batch's
        transaction (as while pinned), and nothing may commit until `pin_reads`: the reads, not pinned,
        then show exactly what was committed at this call.
        """
        if self._ro is not None and self._ro.in_transaction:
            self._ro.execute("COMMIT")
        self._pinned = False
        self._holding = hold
        self._unsynced_keys.clear()

    def start_checkpoint(self) -> asyncio.Future[None] | None:
        """Begin folding a grown WAL back into the database, or None where it is not due; call with reads
        released (`release_reads(hold=True)`) and pin them once it is done: the next read then starts on
        the checkpointed file and the next commit restarts the WAL from its start.

        A pinned reader stops SQLite from restarting the WAL; pinned nearly all the time, the WAL grew by
        every batch (700 MB over 200k events) and every read searched a longer WAL index. The writer process
        runs it while the engine processes on (holding its batches): awaited, its copy and fsync took ~60 ms
        each time, 2.6 us an event of bench/engine.py. A writer thread runs it under the store's lock (its
        connection is aiosqlite's, where another transaction may be open), as it always did. A checkpoint
        that fails is logged: the next settle tries again, and writes that then fail say so themselves.
        """
        try:
            size = os.path.getsize(f"{self.path}-wal")
        except OSError:
            return None
        if size < CHECKPOINT_WAL_BYTES:
            return None
        if self._child is None:
            return asyncio.ensure_future(self._checkpoint())
        # The WAL file keeps its size once restarted: what was written since the last checkpoint decides.
        if self._child.sent - self._checkpointed < CHECKPOINT_SENT_BYTES:
            return None
        self._checkpointed = self._child.sent
        # The child's own future, which its reply resolves (a failure logged): a task around it ended only
        # at the engine's next turn of the loop, which a busy engine seldom takes while its batches are held,
        # and so a 40-90 ms checkpoint held them for 270-320 ms.
        return self._child.submit(writer.CHECKPOINT)

    @serialized
    async def _checkpoint(self) -> None:
        """The writer thread's checkpoint (see `start_checkpoint`); a failure is logged, not raised."""
        try:
            async with self.db.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                await cur.fetchall()
        except (StoreError, sqlite3.Error) as error:
            _checkpoint_failed(error)

    def _submit(self, work: Any, *args: Any) -> asyncio.Future[None]:
        """Queue `work(connection, *args)` as one transaction on the writer, now, without awaiting.

        The child process runs statement lists only (`_write_statements`); a thread runs any work.
        """
        if self._child is not None:
            if work is not _write_statements:
                raise TypeError("the writer process runs (statement, rows) lists only")
            future = self._child.submit(*args)
            self._jobs.append(future)
            return future
        future = asyncio.get_running_loop().create_future()
        self.db._tx.put_nowait((future, functools.partial(self._transaction, work, *args)))  # type: ignore[attr-defined]
        self._jobs.append(future)
        return future

    def _transaction(self, work: Any, *args: Any) -> None:
        """Runs on the writer thread: one transaction, or a refusal once an earlier one failed."""
        if self._write_failure is not None:
            raise StoreError(writer.REFUSED.format(self._write_failure))
        con = self.db._conn  # type: ignore[attr-defined]
        try:
            con.execute("BEGIN IMMEDIATE")
            work(con, *args)
            con.execute("COMMIT")
            self._count_commit()
        except BaseException as error:
            self._write_failure = error
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def _count_commit(self) -> None:
        """A transaction landed (called on the writer's thread: the child's reply reader, or aiosqlite's)."""
        self._commits += 1

    def submit_batch(self, batch: BatchWrite) -> asyncio.Future[None]:
        """Queue one processed batch's transaction (as `commit_batch` writes it), after one that stores the
        events it processed; its future says when the batch is durable."""
        self._write_held_events()
        return self._submit(_write_statements, _batch_statements(batch))

    def _write_held_events(self) -> None:
        """Queue the events appended since the last batch as one transaction of their own (see append_events).

        Their own transaction, as when each append wrote at once: a batch the database refuses loses its
        results, never the events, which the next start processes from the store.
        """
        if self._event_rows:
            rows, self._event_rows = self._event_rows, []
            self._submit(_write_statements, [(INSERT_EVENTS, rows)])

    async def settle(self) -> None:
        """Wait for every queued write; raise the first failure."""
        self._write_held_events()
        jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """Run one detector read on the read-only connection (see `open`); `$n` placeholders."""
        if self._ro is None:
            raise StoreError("store is not open")
        return self._ro.execute(sqlite_sql(sql), args).fetchall()

    _awaits = False

    def _fast(self, statement: str, *args: Any) -> Any:
        return self._read(statement, args)

    # -- event log ------------------------------------------------------------------------

    @serialized
    async def append_events(self, events: Sequence[BaseEvent]) -> list[tuple[int, BaseEvent]]:
        """Store events not seen before (by platform + event_id) and return them with their seq."""
        if self._commits != self._commits_seen:
            # A commit's future completes only when the loop runs the writer's callback, and the
            # engine hands held batches over only once it sees one complete; a busy engine's batches
            # never wait on the loop, so without this turn they were held until the next settle.
            self._commits_seen = self._commits
            await asyncio.sleep(0)
        unique: dict[str, BaseEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        keys = list(unique)
        known: set[str] = set()
        step = self.database.max_params
        for start in range(0, len(keys), step):
            condition, args = self.database.in_list("key", 1, keys[start : start + step])
            # Every earlier append is committed, so the read-only connection sees all known keys.
            known.update(row[0] for row in self._read(f"SELECT key FROM events WHERE {condition}", args))
        # Pinned reads do not show events queued since the pin; they are known all the same.
        fresh = [(k, e) for k, e in unique.items() if k not in known and k not in self._unsynced_keys]
        if not fresh:
            return []
        # The one writer numbers events itself: no other process appends to this file.
        now = datetime.now(UTC).isoformat()
        numbered = [(self._next_seq + i, e) for i, (_, e) in enumerate(fresh)]
        rows = [
            (seq, k, e.type, e.community, e.at_iso, now, dump_event(e))  # type: ignore[attr-defined]
            for (seq, e), (k, _) in zip(numbered, fresh, strict=True)
        ]
        if self._pinned or self._holding:
            # Written just before the transaction that commits their results (`submit_batch`), one
            # transaction for all the batches a group commit holds: a kill -9 before it loses them, and
            # their senders have not been told they are stored (ingest settles first).
            self._unsynced_keys.update(k for k, _ in fresh)
            self._event_rows.extend(rows)
            self._next_seq += len(numbered)
            return numbered
        async with self.database.transaction():
            await self.database.insert_rows("events", EVENT_COLUMNS, (), rows)
        self._next_seq += len(numbered)
        return numbered

    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored bodies of these event keys, the ones appended but not yet written (`_event_rows`) included,
        so a webhook resend of an event that came in through the queue is still told from a reused id."""
        found = await super().known_bodies(keys)
        wanted = set(keys) - found.keys()
        for row in self._event_rows if wanted else ():
            if row[1] in wanted:
                found[row[1]] = row[6]
        return found

    # -- privacy --------------------------------------------------------------------------

    async def _erased(self) -> None:
        """Fold the WAL into the database and truncate it, so erased rows leave no copy in the -wal file."""
        async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            row = await cur.fetchone()
        if row is not None and row[0]:
            log.warning(
                "WAL checkpoint after erasure was blocked by a reader; the -wal file is cleared on the next one"
            )

    def tables(self) -> SqliteDatabase:
        """A connection of its own to this database file, for an adapter's tables (see groomguard.store.db)."""
        return SqliteDatabase(self.path)


def _batch_statements(batch: BatchWrite) -> list[tuple[str, Sequence[Any]]]:
    """The batch's statements (groomguard.store.base) with positional `?`, as `_write_statements` expands them."""
    return [(sqlite_positional(sql), rows) for sql, rows in batch_statements(batch)]


class _ChildWriter:
    """This process's end of groomguard.store.writer: jobs go out on one thread, replies come back on
    another, and each resolves its job's future on the event loop, in order."""

    def __init__(self, path: Path, on_commit: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_commit = on_commit
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", writer.__file__, str(path), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        #: Checkpoints handed over and not yet answered: a failed one is logged, not raised (see `_resolve`).
        self._checkpoints: set[asyncio.Future[None]] = set()
        #: Bytes of jobs handed over so far: what the WAL grew by, roughly (see SqliteStore.start_checkpoint).
        self.sent = 0
        #: Why no job can be written any more (the child exited), once it has.
        self._lost: str | None = None
        self._threads = [
            threading.Thread(target=self._send, name="groomguard-writer-out", daemon=True),
            threading.Thread(target=self._receive, name="groomguard-writer-in", daemon=True),
        ]

    async def started(self) -> None:
        """Wait for the child's first byte (its connection open, its signals set), then serve it."""
        assert self._process.stdout is not None
        first = await asyncio.to_thread(self._process.stdout.read, 1)
        if first != writer.READY:
            why = await asyncio.to_thread(_reason, self._process.stdout) if first == writer.FAILED else None
            code = await asyncio.to_thread(self._process.wait)
            raise OSError(f"the SQLite writer process did not start (exit code {code}{'; ' + why if why else ''})")
        for thread in self._threads:
            thread.start()

    def submit(self, statements: list[tuple[str, Sequence[Any]]] | str) -> asyncio.Future[None]:
        """Hand one transaction (or `writer.CHECKPOINT`) to the child; the future says when it is done (or why not)."""
        future: asyncio.Future[None] = self._loop.create_future()
        if isinstance(statements, str):
            self._checkpoints.add(future)
        if self._lost is not None:
            self._resolve(future, StoreError(self._lost))
            return future
        frame = io.BytesIO()
        frame.write(bytes(writer.FRAME.size))
        pickler = pickle.Pickler(frame, protocol=pickle.HIGHEST_PROTOCOL)
        # Rows are flat tuples: no memo of every object pickled (a third faster, and far less memory).
        pickler.fast = True
        pickler.dump(statements)
        frame.seek(0)
        frame.write(writer.FRAME.pack(frame.getbuffer().nbytes - writer.FRAME.size))
        self.sent += frame.getbuffer().nbytes
        self._waiting.append(future)
        self._frames.put(frame.getvalue())
        if self._lost is not None:
            # The child ended between the check above and the append: the reply reader may be past its
            # last sweep of the waiting futures, so fail them here (each future is resolved once).
            while self._waiting:
                self._resolve(self._waiting.popleft(), StoreError(self._lost))
        return future

    async def landed(self) -> None:
        """Wait until every transaction handed over so far has landed (committed or refused)."""
        if self._waiting:
            await asyncio.wait(list(self._waiting))

    async def close(self) -> None:
        """Let the child write what it was given, then end it (killed if it does not end in 30 s)."""
        if not self._threads[0].is_alive():
            self._process.kill()  # it never started serving
            await asyncio.to_thread(self._process.wait)
            return
        self._frames.put(None)
        try:
            await asyncio.to_thread(self._process.wait, 30)
        except subprocess.TimeoutExpired:
            log.error("the SQLite writer process did not stop; killed it")
            self._process.kill()
            await asyncio.to_thread(self._process.wait)
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 5)

    def _send(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            while (frame := self._frames.get()) is not None:
                stdin.write(frame)
                stdin.flush()
        except OSError:
            pass  # the child is gone: the reply reader fails what was waiting
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _receive(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        while (status := stdout.read(1)) in (writer.DONE, writer.FAILED):
            error: BaseException | None = None
            if status == writer.DONE:
                self._on_commit()
            elif (why := _reason(stdout)) is None:
                break  # the child ended in the middle of its reply
            else:
                error = _writer_error(why)
            future = self._waiting.popleft()
            self._loop.call_soon_threadsafe(self._resolve, future, error)
        if status not in (b"", writer.FAILED):
            # Neither the pipe's end nor a reply cut short: a child speaking another protocol is not trusted.
            self._process.kill()
        code = self._process.wait()
        self._lost = f"the SQLite writer process ended (exit code {code}); nothing more can be written"
        while self._waiting:
            self._loop.call_soon_threadsafe(self._resolve, self._waiting.popleft(), StoreError(self._lost))

    def _resolve(self, future: asyncio.Future[None], error: BaseException | None) -> None:
        """End a job's future (on the loop's thread); a checkpoint that failed is logged instead."""
        if future in self._checkpoints:
            self._checkpoints.discard(future)
            if error is not None:
                _checkpoint_failed(error)
                error = None
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _checkpoint_failed(error: BaseException) -> None:
    """A checkpoint that failed stops nothing: the next settle tries again, and writes that then fail
    say so themselves."""
    log.warning("WAL checkpoint failed (%s); the next settle tries again", error)


def _reason(stream: Any) -> str | None:
    """A failure reply's message, or None where the child ended before all of it came."""
    frame = writer.read_frame(stream)
    return None if frame is None else frame.decode("utf-8", "replace")


def _writer_error(reply: str) -> BaseException:
    """The child's failure as the exception the thread would have raised (sqlite3's own classes kept)."""
    name, _, message = reply.partition(": ")
    kind = getattr(sqlite3, name, None)
    if isinstance(kind, type) and issubclass(kind, sqlite3.Error):
        return kind(message)
    return StoreError(reply)
