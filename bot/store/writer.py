"""The SQLite writer: a store's pipelined transactions, run in a child process of their own.

The event loop's Python work holds the GIL nearly all the time; a writer thread in the same process
waited for it after every statement and fell behind, and the engine then waited on the writer
(`bench/engine.py`: 2.7 s per 100k events with a writer thread, 2.1 s with no writing at all). A child
process has an interpreter of its own. It keeps the thread's meaning exactly:

- Each job is one whole transaction, run in the order handed over, on a connection with the store's
  pragmas (secure_delete among them: erased rows leave no bytes in free pages). Once one fails, every
  later one is refused, so no watermark can move past a batch that was not written.
- The child dies with its parent (Linux PR_SET_PDEATHSIG): a kill -9 of the engine kills a transaction
  in flight, which SQLite rolls back, as it would a thread's. Elsewhere the store keeps the thread.

This file runs as the child's script (`python -I -S writer.py DB`) and imports only the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pickle
import re
import signal
import sqlite3
import struct
import sys
from collections.abc import Sequence
from itertools import chain
from typing import IO, Any

#: Pragmas of every connection that writes the store (the aiosqlite one and the child's).
WRITER_PRAGMAS = ("secure_delete=ON", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=5000")
#: Frame header: the pickled job's length (parent to child); replies are one status byte and, for a
#: failure, a framed message.
FRAME = struct.Struct("<Q")
DONE, FAILED = b"+", b"-"
#: Why a job is refused once an earlier one failed (the writer thread says the same).
REFUSED = "an earlier write failed, so later ones are refused: {}"
#: The child's first byte: its connection is open and its signals are set.
READY = b"R"
#: A job that folds the WAL back into the database (PASSIVE, outside any transaction) instead of writing;
#: one that fails is answered FAILED but refuses nothing after it (see groomguard.store.sqlite.start_checkpoint).
CHECKPOINT = "wal_checkpoint"

#: Most bound parameters in one multi-row INSERT (see `_write_statements`). SQLite's statement cache
#: keeps each prepared statement at ~100 bytes per parameter: at 32,000, with a new text for every row
#: count a batch happened to have, it held ~80 MB (bench/engine.py peak RSS 149 -> 228 MB).
MAX_PARAMS = 8_192
#: Row counts a multi-row INSERT is prepared with: each (statement, size) is prepared once and reused
#: from the statement cache, and a group's tail is padded up to the next size (the padding is bound as
#: NULLs that a LIMIT never reads).
ROW_SIZES = (4, 16, 64, 256, 1024)
_VALUES = re.compile(r"VALUES \((\?(?:,\?)*)\)")


def write_statements(con: sqlite3.Connection, statements: list[tuple[str, Sequence[Any]]]) -> None:
    """Run (statement, rows) pairs on the writer connection, INSERTs as multi-row statements of fixed sizes.

    `executemany` steps SQLite once per row and gives the GIL back around every step; while the event
    loop's thread is busy each step then waits for the GIL again (up to the 5 ms switch interval), so
    a writer behind busy processing crawls. One INSERT with many VALUES rows is one step; its row count
    comes from ROW_SIZES, so SQLite compiles each size once (see MAX_PARAMS for what every new size cost).
    """
    for sql, rows in statements:
        shape = _multi_row_shape(sql) if sql.startswith("INSERT") else None
        if shape is None or len(rows) < 2:
            con.executemany(sql, rows)
            continue
        rows = rows if isinstance(rows, list) else list(rows)
        width = shape[3]
        sizes = [size for size in ROW_SIZES if size * width <= MAX_PARAMS] or [1]
        top, start = sizes[-1], 0
        # This thread holds the GIL while it builds a statement's parameters, and the event loop's reads
        # wait for it: the text is cached and the parameters are flattened in C.
        while len(rows) - start >= top:
            chunk = rows[start : start + top]
            con.execute(_multi_row_text(sql, top, *shape), [*chain.from_iterable(chunk), top])
            start += top
        tail = len(rows) - start
        if tail == 1:
            con.execute(sql, rows[start])
        elif tail:
            size = next(s for s in sizes if s >= tail)
            params = [*chain.from_iterable(rows[start:]), *(None,) * ((size - tail) * width), tail]
            con.execute(_multi_row_text(sql, size, *shape), params)


@functools.lru_cache(maxsize=64)
def _multi_row_shape(sql: str) -> tuple[int, int, str, int] | None:
    """Where an INSERT's one VALUES row is, that row's text and its parameter count; None without one."""
    match = _VALUES.search(sql)
    if match is None or "?" in sql[match.end() :]:
        return None  # the row count's parameter goes last, so nothing may be bound after the VALUES
    return match.start(), match.end(), f"({match.group(1)})", match.group(1).count("?")


@functools.lru_cache(maxsize=256)
def _multi_row_text(sql: str, count: int, start: int, end: int, group: str, width: int) -> str:
    """The INSERT taking `count` rows of which the last parameter says how many are real (the rest pad)."""
    values = ",".join([group] * count)
    # WHERE true: SQLite's documented way to keep an INSERT ... SELECT's ON CONFLICT from reading as a join.
    return f"{sql[:start]}SELECT * FROM (VALUES {values}) WHERE true LIMIT ?{sql[end:]}"


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    """`size` bytes, or None at the end of the stream (the parent closed it, or died)."""
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed frame (a job, or a failure's message), or None where the stream ends first."""
    header = _read_exact(stream, FRAME.size)
    return None if header is None else _read_exact(stream, FRAME.unpack(header)[0])


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux); gone already: exit now."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        sys.exit(0)


def serve(path: str, jobs: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: one transaction per job, in order, until the parent closes the pipe."""
    try:
        con = sqlite3.connect(path, isolation_level=None)
        for pragma in WRITER_PRAGMAS:
            con.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as error:
        _reply(replies, f"{type(error).__name__}: {error}")  # instead of READY: the parent says why
        return
    replies.write(READY)
    replies.flush()
    failure: str | None = None
    try:
        # The end of the pipe, or a job cut short (the parent died handing it over): nothing more is written.
        while (body := read_frame(jobs)) is not None:
            if failure is not None:
                _reply(replies, REFUSED.format(failure))
                continue
            checkpoint = False
            try:
                job = pickle.loads(body)
                checkpoint = job == CHECKPOINT
                if checkpoint:
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                else:
                    con.execute("BEGIN IMMEDIATE")
                    write_statements(con, job)
                    con.execute("COMMIT")
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if not checkpoint:  # a checkpoint that failed leaves the writes to come to say what is wrong
                    failure = message
                _reply(replies, message)
                continue
            replies.write(DONE)
            replies.flush()
    finally:
        with contextlib.suppress(sqlite3.Error):
            con.close()


def _reply(replies: IO[bytes], message: str) -> None:
    text = message.encode("utf-8", "replace")
    replies.write(FAILED + FRAME.pack(len(text)) + text)
    replies.flush()


if __name__ == "__main__":
    # Its parent decides when it ends (closing the pipe) or it dies with it: a Ctrl-C to the terminal's
    # process group, or a supervisor's SIGTERM to every process of the service, must not cut the
    # writes the parent's orderly stop still hands over.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[2]))
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
