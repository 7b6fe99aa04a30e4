"""The SQLite writer thread: multi-row INSERTs write what executemany writes; finished commits reach the loop."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from groomguard.store import writer
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import EventFactory

SCHEMA = "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL, note TEXT)"
ADD = "INSERT INTO t VALUES (?,?,?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n, note = excluded.note"
KEEP = "INSERT INTO t (k, n, note) VALUES (?,?,?) ON CONFLICT DO NOTHING"


def _rows(count: int) -> list[tuple[str, int, str | None]]:
    # Repeated keys inside one statement: additive upserts must add them in order, DO NOTHING keep the first.
    return [(f"k{i % 97}", i, None if i % 5 else f"note {i}") for i in range(count)]


def _table(statements: list[tuple[str, list[tuple[str, int, str | None]]]], multi: bool) -> list[tuple[object, ...]]:
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute(SCHEMA)
    con.execute("BEGIN")
    if multi:
        writer.write_statements(con, statements)  # type: ignore[arg-type]
    else:
        for sql, rows in statements:
            con.executemany(sql, rows)
    con.execute("COMMIT")
    return con.execute("SELECT * FROM t ORDER BY k").fetchall()


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 17, 64, 65, 300, 1024, 1025, 3 * 1024 + 7])
def test_any_row_count_writes_what_executemany_writes(count: int) -> None:
    statements = [(ADD, _rows(count)), (KEEP, [(f"x{i % 13}", i, "first") for i in range(count)])]
    assert _table(statements, multi=True) == _table(statements, multi=False)
    if count > 13:
        assert ("x0", 0, "first") in _table(statements, multi=True)  # the first of the duplicates was kept


def test_statement_sizes_come_from_the_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every multi-row statement has a ROW_SIZES row count (so SQLite prepares each size once)."""
    seen: list[int] = []

    class Recording:
        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def execute(self, sql: str, params: list[object]) -> None:
            seen.append(sql.count("(?,?,?)"))
            self.con.execute(sql, params)

        def executemany(self, sql: str, rows: list[object]) -> None:
            self.con.executemany(sql, rows)

    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute(SCHEMA)
    writer.write_statements(Recording(con), [(ADD, _rows(2 * 1024 + 300))])  # type: ignore[arg-type]
    assert seen == [1024, 1024, 1024]  # two full statements, and the 300-row tail padded to 1024
    assert con.execute("SELECT SUM(n) FROM t").fetchone()[0] == sum(range(2 * 1024 + 300))


def test_wide_rows_stay_under_the_parameter_cap() -> None:
    columns = [f"c{i}" for i in range(40)]
    sql = f"INSERT INTO w VALUES ({','.join('?' * 40)})"
    rows = [tuple(range(r, r + 40)) for r in range(500)]
    shape = writer._multi_row_shape(sql)
    assert shape is not None and shape[3] == 40
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute(f"CREATE TABLE w ({', '.join(columns)})")
    writer.write_statements(con, [(sql, rows)])
    assert con.execute("SELECT COUNT(*), SUM(c39) FROM w").fetchone() == (500, sum(r + 39 for r in range(500)))


def test_a_parameter_after_the_values_falls_back_to_executemany() -> None:
    """The row count is bound last; a statement binding something after its VALUES goes row by row instead."""
    sql = "INSERT INTO t VALUES (?,?,?) ON CONFLICT (k) DO UPDATE SET n = t.n + ?"
    assert writer._multi_row_shape(sql) is None
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute(SCHEMA)
    writer.write_statements(con, [(sql, [("a", 1, None, 0), ("a", 5, None, 10), ("b", 2, None, 0)])])
    assert con.execute("SELECT k, n FROM t ORDER BY k").fetchall() == [("a", 11), ("b", 2)]


async def test_an_append_lets_the_loop_see_a_commit_the_writer_finished(tmp_path: Path) -> None:
    """A busy engine never waits on the loop between batches; an append gives the loop the turn that
    completes a landed commit's future, so the engine can hand its held batches over before settling."""
    events = EventFactory()
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    try:
        store.pin_reads()
        await store.append_events([events.joined("u1")])
        future = store._submit(writer.write_statements, [])
        deadline = time.monotonic() + 10
        while store._commits == 0 and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 - the loop kept busy, as while processing; the writer commits
        assert store._commits == 1
        assert not future.done(), "only the loop completes the future"
        await store.append_events([events.joined("u2")])
        assert future.done()
        await store.settle()
    finally:
        store.release_reads()
        await store.close()
