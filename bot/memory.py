"""Detector memory: what a detector remembers, kept as key → JSON rows in the store and written with the batch.

A detector that must remember something between events (a "fired this hour" mark, a conversation
window) keeps it here instead of in its own dicts, so a restart or kill -9 neither loses nor repeats
what it derived. The rows are written in the same transaction as the batch's findings, cases,
outbox and watermark: either the batch and its memory are both committed, or neither is, and the
replayed batch then recomputes the same memory. See `groomguard.detectors.base.DetectorMemory` for the
contract a detector codes against.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

#: Committed rows kept decoded in memory at most; past it the clean ones are dropped and re-read on demand.
MAX_CACHED = 100_000


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One stored memory row; `value` is JSON text, or None to delete the row."""

    detector: str
    community: str
    key: str
    value: str | None
    accounts: tuple[str, ...] = ()
    expires_at: datetime | None = None


class MemoryReader(Protocol):
    """The store's side: committed rows, read point-wise or (for start-up restores) by detector prefix."""

    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None: ...

    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]: ...


class _NoMemory:
    """A reader with nothing committed (state used without a store, in unit tests)."""

    async def memory_row(self, detector: str, community: str, key: str) -> MemoryRow | None:
        return None

    async def memory_rows(self, detector_prefix: str) -> list[MemoryRow]:
        return []


_ABSENT = MemoryRow("", "", "", None)


class MemoryBook:
    """Every detector's memory: a cache of committed rows plus this batch's writes, taken by the engine."""

    def __init__(self, reader: MemoryReader | None = None, max_cached: int = MAX_CACHED) -> None:
        has_rows = reader is not None and hasattr(reader, "memory_row")
        self.reader: MemoryReader = reader if has_rows else _NoMemory()  # type: ignore[assignment]
        self.max_cached = max_cached
        self._cache: dict[tuple[str, str, str], MemoryRow] = {}
        self._pending: dict[tuple[str, str, str], MemoryRow] = {}
        # Rows handed to the store whose commit may not be visible to its reads yet (see `settle`):
        # never evicted, because a re-read from the store could return the older row.
        self._unsynced: dict[tuple[str, str, str], MemoryRow] = {}

    def view(self, detector: str) -> DetectorMemoryView:
        """The memory of one detector (what `DetectorState.memory(name)` returns)."""
        return DetectorMemoryView(self, detector)

    async def get(self, detector: str, community: str, key: str, at: datetime | None = None) -> Any | None:
        """The value stored under `key`, decoded; None when absent or expired at `at`."""
        ident = (detector, community, key)
        row = self._pending.get(ident) or self._unsynced.get(ident) or self._cache.get(ident)
        if row is None:
            row = await self.reader.memory_row(detector, community, key) or _ABSENT
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[ident] = row
        if row.value is None:
            return None
        if at is not None and row.expires_at is not None and row.expires_at <= at:
            return None
        # Decoded per read, so a detector that mutates what it got cannot change memory without `put`.
        return json.loads(row.value)

    def put(
        self,
        detector: str,
        community: str,
        key: str,
        value: Any,
        accounts: Iterable[str],
        expires_at: datetime | None = None,
    ) -> None:
        """Queue `value` (JSON-serialisable) under `key` for this batch's commit; readable at once."""
        row = MemoryRow(
            detector,
            community,
            key,
            json.dumps(value, separators=(",", ":"), sort_keys=True),
            tuple(sorted(set(accounts))),
            expires_at,
        )
        self._pending[(detector, community, key)] = row

    def delete(self, detector: str, community: str, key: str) -> None:
        """Queue removal of `key` for this batch's commit."""
        self._pending[(detector, community, key)] = MemoryRow(detector, community, key, None)

    async def rows(self, detector_prefix: str) -> list[MemoryRow]:
        """Every committed row of the detectors whose name starts with `detector_prefix` (start-up restores)."""
        return await self.reader.memory_rows(detector_prefix)

    def take_pending(self) -> list[MemoryRow]:
        """Hand this batch's writes to the store; they stay readable here until `settle`."""
        if not self._pending:
            return []
        rows = list(self._pending.values())
        for ident, row in self._pending.items():
            self._unsynced[ident] = row if row.value is not None else _ABSENT
        self._pending = {}
        return rows

    def settle(self) -> None:
        """The store's reads now show every row handed over: they become the cached committed state."""
        if not self._unsynced:
            return
        if len(self._cache) + len(self._unsynced) > self.max_cached:
            self._cache.clear()
        self._cache.update(self._unsynced)
        self._unsynced = {}

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop every cached or queued row about `account` (the store deletes its copies in `forget`).

        Cached absences and deletions (no value, no accounts) go too when their key names the account
        (composite keys such as "adult|child"): they hold nothing, and a later read asks the store again.
        """
        for table in (self._cache, self._unsynced, self._pending):
            for ident in [
                i
                for i, row in table.items()
                if (community is None or i[1] == community)
                and (
                    account in row.accounts
                    or i[2] == account
                    or (table is self._cache and row.value is None and account in i[2])
                )
            ]:
                del table[ident]


class DetectorMemoryView:
    """One detector's memory: the object behind `DetectorState.memory(name)` (see base.DetectorMemory)."""

    __slots__ = ("_book", "detector")

    def __init__(self, book: MemoryBook, detector: str) -> None:
        self._book = book
        self.detector = detector

    async def get(self, community: str, key: str, at: datetime | None = None) -> Any | None:
        return await self._book.get(self.detector, community, key, at)

    def put(
        self, community: str, key: str, value: Any, *, accounts: Iterable[str], expires_at: datetime | None = None
    ) -> None:
        self._book.put(self.detector, community, key, value, accounts, expires_at)

    def delete(self, community: str, key: str) -> None:
        self._book.delete(self.detector, community, key)
