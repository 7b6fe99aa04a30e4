"""The SQLite writer in a child process (groomguard.store.writer): order, failure and lifetime as a thread's."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from groomguard.store import writer
from groomguard.store.sqlite import SqliteStore, StoreError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the writer process is Linux only (PR_SET_PDEATHSIG)")

META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


@contextlib.asynccontextmanager
async def _opened(path: Path, child: bool = True, writer_process: bool = True) -> AsyncIterator[SqliteStore]:
    """An open store on `path` whose writer is (or, `child=False`, is not) a child process; closed after."""
    store = SqliteStore(path, writer_process=writer_process)
    await store.open()
    try:
        assert (store._child is not None) is child
        yield store
    finally:
        await store.close()


async def _probe(store: SqliteStore, value: str) -> str | None:
    """Hand the writer one transaction setting meta 'probe' to `value`, then read 'probe' back at once."""
    store._submit(writer.write_statements, [(META, [("probe", value)])])
    return await store.database.fetchval("SELECT value FROM meta WHERE name = 'probe'")  # type: ignore[no-any-return]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


async def test_statements_after_a_handed_over_transaction_see_it(tmp_path: Path) -> None:
    """aiosqlite's own statements wait for the child's queued transactions, as on one connection."""
    async with _opened(tmp_path / "x.db") as store:
        for i in range(20):
            # At once, without settling: the read comes after the write it follows.
            assert await _probe(store, str(i)) == str(i)
        await store.settle()


async def test_a_writer_process_that_died_fails_every_later_write_clearly(tmp_path: Path) -> None:
    async with _opened(tmp_path / "x.db") as store:
        store._submit(writer.write_statements, [(META, [("probe", "1")])])
        await store.settle()
        store._child._process.kill()
        store._child._process.wait()
        with pytest.raises(StoreError, match="writer process ended"):
            await store._submit(writer.write_statements, [(META, [("probe", "2")])])
        with pytest.raises(StoreError, match="writer process ended"):
            await store._submit(writer.write_statements, [(META, [("probe", "3")])])
    con = sqlite3.connect(tmp_path / "x.db")
    assert con.execute("SELECT value FROM meta WHERE name = 'probe'").fetchone() == ("1",)
    con.close()


def test_the_writer_process_dies_with_its_engine(tmp_path: Path) -> None:
    """A kill -9 of the engine's process takes the child with it (the kernel kills it): no orphan writes."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from groomguard.store.sqlite import SqliteStore
        async def main():
            store = SqliteStore({str(tmp_path / "x.db")!r})
            await store.open()
            print(store._child._process.pid, flush=True)
            time.sleep(60)
        asyncio.run(main())
        """
    )
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert engine.stdout is not None
        child = int(engine.stdout.readline())
        assert _alive(child)
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the writer process outlived its engine"
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()


def test_the_writer_process_dies_with_its_engine_in_the_middle_of_a_transaction(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG itself: a child waiting for the write lock inside a job reads no pipe, so only the
    kernel's signal ends it at once (not the end of the pipe); its transaction never commits."""
    path = tmp_path / "x.db"
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from groomguard.store import writer
        from groomguard.store.sqlite import SqliteStore
        async def main():
            store = SqliteStore({str(path)!r})
            await store.open()
            print(store._child._process.pid, flush=True)
            sys.stdin.readline()
            store._submit(writer.write_statements, [({META!r}, [("probe", "orphan")])])
            time.sleep(60)
        asyncio.run(main())
        """
    )
    engine = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        assert engine.stdin is not None and engine.stdout is not None
        child = int(engine.stdout.readline())
        lock.execute("BEGIN IMMEDIATE")  # the child's job now waits on busy_timeout (5 s)
        engine.stdin.write("go\n")
        engine.stdin.flush()
        time.sleep(0.5)
        assert _alive(child)
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        deadline = time.monotonic() + 2  # well inside the 5 s the child would wait for the lock
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child), "the writer process outlived its engine while inside a transaction"
        lock.execute("ROLLBACK")
        assert lock.execute("SELECT value FROM meta WHERE name = 'probe'").fetchone() is None
    finally:
        lock.close()
        if engine.poll() is None:
            engine.kill()
            engine.wait()


async def test_the_writer_process_ignores_interrupts_its_parent_decides(tmp_path: Path) -> None:
    """Ctrl-C (to the terminal's process group) or a supervisor's SIGTERM must not cut an orderly stop."""
    async with _opened(tmp_path / "x.db") as store:
        store._child._process.send_signal(signal.SIGINT)
        store._child._process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert await _probe(store, "after signals") == "after signals"


async def test_a_store_on_a_thread_runs_the_same_statements(tmp_path: Path) -> None:
    async with _opened(tmp_path / "x.db", child=False, writer_process=False) as store:
        assert await _probe(store, "thread") == "thread"


async def test_the_writer_process_connection_has_the_store_pragmas(tmp_path: Path) -> None:
    """secure_delete above all: the child's DELETEs (deleted messages, expired memory) must zero their bytes."""
    async with _opened(tmp_path / "x.db") as store:
        read = "INSERT INTO meta (name, value) SELECT ?, * FROM pragma_{0}"
        await store._submit(
            writer.write_statements,
            [
                (read.format(name), [(name,)])
                for name in ("secure_delete", "synchronous", "foreign_keys", "busy_timeout")
            ],
        )
        rows = await store.database.fetch(
            "SELECT name, value FROM meta WHERE name IN ('secure_delete', 'synchronous', 'foreign_keys', 'busy_timeout')"
        )
    # synchronous NORMAL is 1.
    assert {r[0]: str(r[1]) for r in rows} == {
        "secure_delete": "1",
        "synchronous": "1",
        "foreign_keys": "1",
        "busy_timeout": "5000",
    }


async def test_where_the_writer_process_cannot_start_the_store_writes_from_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An embedding host whose sys.executable is not Python: a warning, and the thread, not a failed start."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    async with _opened(tmp_path / "x.db", child=False) as store:
        assert await _probe(store, "thread") == "thread"
    assert "writes from a thread instead" in caplog.text


@pytest.fixture
def refusing_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's script with a pragma SQLite refuses: its own connection fails as it starts."""
    script = Path(writer.__file__).read_text()
    broken = tmp_path / "writer.py"
    broken.write_text(script.replace("WRITER_PRAGMAS = (", "WRITER_PRAGMAS = ('no such pragma syntax',) or (", 1))
    monkeypatch.setattr(writer, "__file__", str(broken))


@pytest.mark.usefixtures("refusing_writer")
async def test_a_writer_process_whose_connection_fails_says_why_and_the_thread_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The child's own connection failing is one clear warning with SQLite's reason, not a traceback."""
    async with _opened(tmp_path / "x.db", child=False) as store:
        assert await _probe(store, "thread") == "thread"
    assert "did not start (exit code 0; OperationalError" in caplog.text
    assert "writes from a thread instead" in caplog.text


def _jobs(*jobs: object) -> io.BytesIO:
    """The parent's side of the pipe: each job framed as `_ChildWriter.submit` frames it."""
    out = io.BytesIO()
    for job in jobs:
        body = job if isinstance(job, bytes) else pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(writer.FRAME.pack(len(body)) + body)
    out.seek(0)
    return out


def _answers(replies: bytes) -> list[str]:
    """The child's replies in order: 'ready', 'done', or the failure's text."""
    stream, out = io.BytesIO(replies), []
    assert stream.read(1) == writer.READY
    while status := stream.read(1):
        out.append("done" if status == writer.DONE else (writer.read_frame(stream) or b"").decode())
    return out


def test_the_writer_loop_runs_checkpoints_outside_transactions_and_refuses_after_a_failed_job(tmp_path: Path) -> None:
    """A checkpoint is answered like a write; a failed write, or a frame that is no job at all, refuses every
    later job, checkpoints included."""
    db = tmp_path / "x.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.close()
    replies = io.BytesIO()
    writer.serve(
        str(db),
        _jobs(writer.CHECKPOINT, [(META, [("a", "1")])], writer.CHECKPOINT, b"not a pickle", [(META, [("b", "2")])]),
        replies,
    )
    answers = _answers(replies.getvalue())
    assert answers[:3] == ["done", "done", "done"]
    assert "Unpickling" in answers[3] or "pickle" in answers[3].lower(), answers[3]
    assert answers[4].startswith("an earlier write failed"), answers[4]
    con = sqlite3.connect(db)
    assert con.execute("SELECT name FROM meta").fetchall() == [("a",)]
    con.close()
