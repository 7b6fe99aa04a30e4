"""A thin dialect layer over SQLite (aiosqlite) and PostgreSQL (asyncpg): one set of SQL statements for both.

Statements are written once, PostgreSQL-style: `$1, $2, ...` placeholders (SQLite gets `?1, ?2, ...`,
numbered so a parameter may be used twice), `INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING` upserts (both
speak them; write `table.column` on the right of a DO UPDATE, which PostgreSQL requires), and what the
dialects spell differently through small SQL builders: JSON access (`json_text`, `json_scalar`,
`json_has`, `json_blank`), `contains`, list parameters (`in_list`), bulk inserts (`insert_rows`) and
transaction-scoped locks (`xact_lock`). Modelled on mautrix's async_db. The engine's store
(groomguard.store.base) runs through one of these, and adapters keep their own tables in the same database
through another (`Store.tables()`), a connection of their own, so their autocommit writes never land
inside the engine's batch transaction.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
from groomguard.store.writer import WRITER_PRAGMAS

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\$(\d+)")


def private_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600), or tighten an existing one.

    SQLite creates the -wal and -shm files with the database file's permissions, so they follow.
    """
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        return
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if part.exists() and part.stat().st_mode & 0o077:
                part.chmod(0o600)
                log.warning("%s was readable by others; made it 0600 (it holds children's data)", part)
        except PermissionError:
            log.warning("%s is readable by others and not ours to chmod; run chmod 600 on it", part)


def read_migrations(folder: str) -> list[tuple[int, str]]:
    """Numbered SQL files shipped in bot/store/<folder>, in order (migrations = SQLite, migrations_pg)."""
    files = resources.files("groomguard.store") / folder
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


@functools.lru_cache(maxsize=1024)
def sqlite_sql(statement: str) -> str:
    """`$n` placeholders as SQLite's numbered `?n` (cached: the engine sends the same statements per batch)."""
    return _PLACEHOLDER.sub(r"?\1", statement)


@functools.lru_cache(maxsize=256)
def sqlite_positional(statement: str) -> str:
    """`$1..$k`, each once and in order, as SQLite's plain `?` (what a multi-row VALUES list needs)."""
    numbers = [int(n) for n in _PLACEHOLDER.findall(statement)]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"placeholders are not $1..$n in order, each once: {statement[:80]}")
    return _PLACEHOLDER.sub("?", statement)


@functools.lru_cache(maxsize=64)
def _sqlite_marks(first: int, count: int) -> str:
    """`?first,...` for a list parameter (cached: the append's key check sends one per batch)."""
    return ",".join(f"?{first + i}" for i in range(count))


def _rowcount(status: str) -> int:
    """The row count at the end of an asyncpg command status ("DELETE 3", "INSERT 0 1")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _pg_text(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; SQLite can. Replace it so hostile text cannot stop the engine.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [_pg_text(v) for v in value]
    return value


class SqliteDatabase:
    """The SQLite dialect: one aiosqlite connection in autocommit on the store's file (WAL, 0600)."""

    dialect = "sqlite"
    #: Most parameters one statement binds (SQLite builds before 3.32 stop at 999).
    max_params = 900

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        #: Awaited before each statement outside a transaction: the store's transactions handed to a
        #: writer of their own (groomguard.store.writer) land first, as on one connection.
        self.barrier: Callable[[], Awaitable[None]] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)  # 0600: the engine's database file, shared
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        # Deleted rows are overwritten with zeros, so an erased account leaves no bytes in free pages.
        for pragma in WRITER_PRAGMAS:
            await self._db.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._db

    @staticmethod
    def sql(statement: str) -> str:
        return sqlite_sql(statement)

    @staticmethod
    def stored_text(value: str) -> str:
        """Text as this database keeps it (SQLite keeps any string as it is)."""
        return value

    # -- what the dialects spell differently -----------------------------------------------

    def json_text(self, column: str, field: str) -> str:
        """SQL for the text of a top-level JSON field of a TEXT column."""
        return f"json_extract({column}, '$.{field}')"

    def json_scalar(self, column: str) -> str:
        """SQL for a TEXT column holding one JSON scalar, as that scalar's text ('"2026-..."' -> 2026-...)."""
        return f"json_extract({column}, '$')"

    def json_has(self, column: str, field: str | None, param: str) -> str:
        """SQL that is true when the JSON array `column` (or its top-level `field`) holds the text `param`."""
        path = f", '$.{field}'" if field else ""
        # json_each walks a scalar as one value: only an array holds anything (as on PostgreSQL).
        return (
            f"EXISTS (SELECT 1 FROM json_each({column}{path}) WHERE json_type({column}{path}) = 'array' "
            f"AND value = {param})"
        )

    def json_blank(self, column: str, field: str) -> str:
        """SQL for the JSON text of `column` with its top-level `field` set to the empty string."""
        return f"json_set({column}, '$.{field}', '')"

    def contains(self, column: str, param: str) -> str:
        """SQL that is true when `column` contains the text bound to `param` (no LIKE wildcards)."""
        return f"instr({column}, {param}) > 0"

    def unindexed(self, column: str) -> str:
        """`column` in a condition the planner should not pick an index for (SQLite's unary +)."""
        return f"+{column}"

    def in_list(self, column: str, first: int, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """SQL for `column` equal to one of `values`, bound from `$first` on, and the arguments to bind."""
        if not values:
            return "0 = 1", []
        return f"{column} IN ({_sqlite_marks(first, len(values))})", list(values)

    def same(self, expression: str, param: str) -> str:
        """Row identity in a WHERE: `IS`, because a SQLite primary-key column may hold NULL."""
        return f"{expression} IS {param}"

    async def table_names(self) -> list[str]:
        """The store's tables (adapters' too) but the bookkeeping ones (schema_version, meta)."""
        rows = await self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('schema_version', 'meta') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [r[0] for r in rows]

    async def table_columns(self, table: str) -> tuple[list[str], list[str]]:
        """A table's columns, and the SQL expressions that identify one row (its primary key, else rowid)."""
        async with (await self._landed()).execute(f'PRAGMA table_info("{table}")') as cur:
            info = list(await cur.fetchall())
        keys = [f'"{r[1]}"' for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
        return [r[1] for r in info], keys or ["rowid"]

    # -- statements --------------------------------------------------------------------------

    async def _landed(self) -> aiosqlite.Connection:
        """The connection, once the writer's queued transactions landed (inside a transaction: at once)."""
        db = self.db
        if self.barrier is not None and not db.in_transaction:
            await self.barrier()
        return db

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One write transaction: BEGIN IMMEDIATE takes the file's write lock up front (no upgrade deadlock)."""
        db = await self._landed()
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")

    async def xact_lock(self, key: int) -> None:
        """Nothing to do: the write transaction already holds SQLite's one lock (see PostgresDatabase)."""

    async def script(self, sql: str) -> None:
        """Run a migration file, statement by statement, inside the current transaction."""
        for statement in split_sql(sql):
            await (await self._landed()).execute(statement)

    async def execute(self, statement: str, *args: Any) -> int:
        cursor = await (await self._landed()).execute(sqlite_sql(statement), args)
        return max(0, cursor.rowcount)

    async def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        await (await self._landed()).executemany(sqlite_sql(statement), rows)

    async def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
        conflict: str = "",
    ) -> None:
        """Bulk insert (`types` are PostgreSQL's; `conflict` like "(key) DO NOTHING"): executemany here."""
        marks = ",".join(f"${i + 1}" for i in range(len(columns)))
        tail = f" ON CONFLICT {conflict}" if conflict else ""
        await self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){tail}", rows)

    async def fetch(self, statement: str, *args: Any) -> list[Mapping[str, Any]]:
        async with (await self._landed()).execute(sqlite_sql(statement), args) as cursor:
            return list(await cursor.fetchall())

    async def fetchrow(self, statement: str, *args: Any) -> Mapping[str, Any] | None:
        async with (await self._landed()).execute(sqlite_sql(statement), args) as cursor:
            row: Mapping[str, Any] | None = await cursor.fetchone()
            return row

    async def fetchval(self, statement: str, *args: Any) -> Any:
        async with (await self._landed()).execute(sqlite_sql(statement), args) as cursor:
            row = await cursor.fetchone()
        return row[0] if row is not None else None


class PostgresDatabase:
    """The PostgreSQL dialect: one asyncpg connection of its own to the store's database."""

    dialect = "postgres"
    max_params = 30_000  # lists go as one array parameter; this only bounds one statement's array

    def __init__(self, url: str, server_settings: dict[str, str] | None = None) -> None:
        self.url = url
        #: Session settings sent with every connection (groomguard.store.postgres sets its timeouts here).
        self.server_settings = server_settings
        self._db: Any = None

    async def open(self) -> None:
        import asyncpg

        self._db = await asyncpg.connect(self.url, server_settings=self.server_settings)

    async def reopen(self) -> bool:
        """Connect again if the server dropped the connection (a restart, a terminated backend); True if it did.

        A store that was closed stays closed."""
        if self._db is None or not self._db.is_closed():
            return False
        await self.open()
        return True

    async def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()
            self._db = None

    @property
    def db(self) -> Any:
        if self._db is None:
            raise RuntimeError("database is not open")
        return self._db

    @staticmethod
    def stored_text(value: str) -> str:
        """Text as PostgreSQL keeps it: NUL replaced (see `_pg_text`)."""
        return str(_pg_text(value))

    # -- what the dialects spell differently (see SqliteDatabase) -----------------------------

    def json_text(self, column: str, field: str) -> str:
        return f"({column}::jsonb ->> '{field}')"

    def json_scalar(self, column: str) -> str:
        return f"({column}::json #>> '{{}}')"

    def json_has(self, column: str, field: str | None, param: str) -> str:
        value = f"{column}::json -> '{field}'" if field else f"{column}::json"
        # A missing field or a non-array holds nothing (json_array_elements_text raises on a non-array).
        return (
            f"EXISTS (SELECT 1 FROM json_array_elements_text(CASE WHEN json_typeof({value}) = 'array' "
            f"THEN {value} ELSE '[]'::json END) AS m(v) WHERE m.v = {param})"
        )

    def json_blank(self, column: str, field: str) -> str:
        return f"jsonb_set({column}::jsonb, '{{{field}}}', '\"\"')::text"

    def contains(self, column: str, param: str) -> str:
        return f"strpos({column}, {param}) > 0"

    def unindexed(self, column: str) -> str:
        return column

    def in_list(self, column: str, first: int, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(${first})", [list(values)]

    def same(self, expression: str, param: str) -> str:
        return f"{expression} = {param}"

    async def table_names(self) -> list[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' AND table_name NOT IN ('schema_version', 'meta') ORDER BY 1"
        )
        return [r[0] for r in rows]

    async def table_columns(self, table: str) -> tuple[list[str], list[str]]:
        """A table's columns, and ctid: the physical row, which every table has."""
        rows = await self.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        return [r[0] for r in rows], ["ctid"]

    # -- statements --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.db.transaction():
            yield

    async def xact_lock(self, key: int) -> None:
        """Take advisory lock `key` until the transaction ends (two engines on one database take turns)."""
        await self.db.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def script(self, sql: str) -> None:
        await self.db.execute(sql)

    async def execute(self, statement: str, *args: Any) -> int:
        return _rowcount(await self.db.execute(statement, *map(_pg_text, args)))

    async def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(statement, [tuple(map(_pg_text, row)) for row in rows])

    async def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
        conflict: str = "",
    ) -> None:
        """Bulk insert as one statement: a column array per parameter, unnested server-side."""
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        tail = f" ON CONFLICT {conflict}" if conflict else ""
        columns_data = [list(map(_pg_text, column)) for column in zip(*rows, strict=True)]
        await self.db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}){tail}", *columns_data
        )

    async def fetch(self, statement: str, *args: Any) -> list[Mapping[str, Any]]:
        return list(await self.db.fetch(statement, *map(_pg_text, args)))

    async def fetchrow(self, statement: str, *args: Any) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = await self.db.fetchrow(statement, *map(_pg_text, args))
        return row

    async def fetchval(self, statement: str, *args: Any) -> Any:
        return await self.db.fetchval(statement, *map(_pg_text, args))
