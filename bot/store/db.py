"""A thin dialect layer over SQLite (aiosqlite) and PostgreSQL (asyncpg): one set of SQL statements for both.

Statements are written once, PostgreSQL-style: `$1, $2, ...` placeholders (SQLite gets `?1, ?2, ...`),
`INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING` upserts (both speak them), and the few functions that
differ through `json_text` and `contains`. Modelled on mautrix's async_db. Adapters keep their own
tables in the engine's database through one of these (`Store.tables()`), a connection of their own, so
their autocommit writes never land inside the engine's batch transaction.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

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


def _rowcount(status: str) -> int:
    """The row count at the end of an asyncpg command status ("DELETE 3", "INSERT 0 1")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class SqliteDatabase:
    """The SQLite dialect: one aiosqlite connection in autocommit on the store's file (WAL, 0600)."""

    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: Any = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)  # 0600: the engine's database file, shared
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.execute("PRAGMA secure_delete=ON")  # erased rows leave no bytes behind

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> Any:
        if self._db is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._db

    @staticmethod
    def sql(statement: str) -> str:
        return _PLACEHOLDER.sub(r"?\1", statement)

    def json_text(self, column: str, field: str) -> str:
        """SQL for the text of a top-level JSON field of a TEXT column."""
        return f"json_extract({column}, '$.{field}')"

    def contains(self, column: str, param: str) -> str:
        """SQL that is true when `column` contains the text bound to `param` (no LIKE wildcards)."""
        return f"instr({column}, {param}) > 0"

    async def execute(self, statement: str, *args: Any) -> int:
        cursor = await self.db.execute(self.sql(statement), args)
        return max(0, cursor.rowcount)

    async def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(self.sql(statement), list(rows))

    async def fetch(self, statement: str, *args: Any) -> list[Mapping[str, Any]]:
        async with self.db.execute(self.sql(statement), args) as cursor:
            return list(await cursor.fetchall())

    async def fetchrow(self, statement: str, *args: Any) -> Mapping[str, Any] | None:
        async with self.db.execute(self.sql(statement), args) as cursor:
            row: Mapping[str, Any] | None = await cursor.fetchone()
            return row


class PostgresDatabase:
    """The PostgreSQL dialect: one asyncpg connection of its own to the store's database."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._db: Any = None

    async def open(self) -> None:
        import asyncpg

        self._db = await asyncpg.connect(self.url)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> Any:
        if self._db is None:
            raise RuntimeError("database is not open")
        return self._db

    def json_text(self, column: str, field: str) -> str:
        return f"({column}::jsonb ->> '{field}')"

    def contains(self, column: str, param: str) -> str:
        return f"strpos({column}, {param}) > 0"

    async def execute(self, statement: str, *args: Any) -> int:
        return _rowcount(await self.db.execute(statement, *args))

    async def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(statement, list(rows))

    async def fetch(self, statement: str, *args: Any) -> list[Mapping[str, Any]]:
        return list(await self.db.fetch(statement, *args))

    async def fetchrow(self, statement: str, *args: Any) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = await self.db.fetchrow(statement, *args)
        return row
