"""The engine's bounded event queue: producers add many events at once and the engine takes whole batches.

`asyncio.Queue` moves one item per call, with a future and a wake-up each; at tens of thousands of events
a second that is a tenth of the engine's time. This one keeps asyncio.Queue's meaning (a bound that makes
producers wait, `join` until every taken event is marked done) with one call per batch on both sides.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """A FIFO of at most `maxsize` items; `put_many` waits for room, `get_batch` for the first item."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._more = asyncio.Event()  # set while items are queued
        self._room = asyncio.Event()  # set while there is room
        self._room.set()
        self._idle = asyncio.Event()  # set while every item put was marked done
        self._idle.set()
        self._unfinished = 0
        self._closed: BaseException | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    async def put(self, item: T) -> None:
        """Add one item, waiting while the queue is full."""
        await self.put_many((item,))

    async def put_many(self, items: Iterable[T]) -> None:
        """Add items in order, waiting whenever the queue is full (back-pressure, as `put`)."""
        pending = list(items)
        start = 0
        while start < len(pending):
            if self._closed is not None:
                raise self._closed
            room = self.maxsize - len(self._items)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            self._add(pending[start : start + room])
            start += room

    def _add(self, items: Iterable[T]) -> None:
        before = len(self._items)
        self._items.extend(items)
        added = len(self._items) - before
        if added:
            self._unfinished += added
            self._idle.clear()
            self._more.set()
        if len(self._items) >= self.maxsize:
            self._room.clear()

    async def get_batch(self, size: int, wait_s: float) -> list[T]:
        """Up to `size` items: waits for the first, then up to `wait_s` more for the batch to fill."""
        while not self._items:
            self._more.clear()
            await self._more.wait()
        deadline = time.monotonic() + wait_s
        while len(self._items) < size and (remaining := deadline - time.monotonic()) > 0:
            self._more.clear()
            try:
                await asyncio.wait_for(self._more.wait(), remaining)
            except TimeoutError:
                break
        return self._take(size)

    def close(self, error: BaseException) -> int:
        """Refuse every later put with `error` (producers waiting for room get it too); drop what is queued,
        marked done, and return how many were dropped. The engine's failure path."""
        self._closed = error
        dropped = self._take(len(self._items))
        self.task_done(len(dropped))
        return len(dropped)

    def reopen(self) -> None:
        """Take puts again after `close` (an engine that recovered in-process)."""
        self._closed = None

    def _take(self, size: int) -> list[T]:
        items = self._items
        if size >= len(items):
            batch = list(items)
            items.clear()
            self._more.clear()
        else:
            batch = [items.popleft() for _ in range(size)]
        self._room.set()
        return batch

    def task_done(self, count: int = 1) -> None:
        """Mark `count` taken items as handled; `join` returns once none are left."""
        if count > self._unfinished:
            raise ValueError("task_done() called more times than items were put")
        self._unfinished -= count
        if self._unfinished == 0:
            self._idle.set()

    async def join(self) -> None:
        """Wait until every item put has been taken and marked done."""
        await self._idle.wait()
