"""The log follower: keeps an engine processing its share of a shared (PostgreSQL) event log.

It lives beside the engine, not in a store backend: it decides when the engine processes and when the
store's lease round runs, and reaches the backend only through the `SharedLog` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import ClassVar, Protocol, runtime_checkable

from groomguard.engine import Engine
from groomguard.events import BaseEvent

log = logging.getLogger(__name__)


@runtime_checkable
class SharedLog(Protocol):
    """A store several engines append to, each processing the partitions it leases."""

    #: Errors of the backend a follower logs and retries after (a dropped connection, a restart).
    transient_errors: ClassVar[tuple[type[BaseException], ...]]
    #: How often a lease round should run (the store's heartbeat).
    rebalance_every_s: float

    async def take_due(self, limit: int) -> list[tuple[int, BaseEvent]]: ...

    async def rebalance(self) -> bool: ...

    async def reconnect(self) -> None: ...


class LogFollower:
    """Polls for events other engines stored in this engine's partitions, and runs the lease rounds that
    hand a dead or departing engine's partitions to this one (or this one's excess to a newcomer)."""

    def __init__(self, engine: Engine, interval_s: float = 0.2, rebalance_s: float | None = None) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.rebalance_s = rebalance_s if rebalance_s is not None else self.store.rebalance_every_s
        #: Lease rounds that changed this engine's partitions (taken over, released, lost).
        self.changes = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def store(self) -> SharedLog:
        store = self.engine.store
        if not isinstance(store, SharedLog):
            raise TypeError(f"{type(store).__name__} is not a shared event log (PostgreSQL): nothing to follow")
        return store

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="groomguard-log-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def catch_up(self) -> int:
        """Process events of this engine's partitions that are due (stored by any engine); returns how many."""
        # Same path as Engine.start's recovery, under the engine's writer lock.
        return await self.engine.catch_up(self.store.take_due)

    async def rebalance(self) -> bool:
        """One lease round between batches; rebuilds the engine's memory when its partitions changed."""
        changed = await self.engine.rebalance(self.store.rebalance)
        if changed:
            self.changes += 1
        return changed

    async def _run(self) -> None:
        next_round = time.monotonic() + self.rebalance_s
        failures = 0
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.rebalance_s
                    await self.rebalance()
                await self.catch_up()
                failures = 0
            except self.store.transient_errors:
                log.exception("log follower: database error; retrying")
                # A restart or a terminated backend closes the connection for good: open it again, or this
                # process keeps its partitions (the leases renew on their own connection) and processes none.
                try:
                    await self.store.reconnect()
                except self.store.transient_errors as error:
                    log.warning("log follower: cannot reconnect yet (%s); trying again", error)
            except Exception:
                # Anything else (a bug, a value the code did not expect) must not end the follower silently
                # while the heartbeat goes on renewing its leases: logged, then retried, less often each time.
                failures += 1
                delay = self._backoff(failures)
                log.exception("log follower: unexpected error; retrying in %.1f s", delay)
                await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        """Seconds to wait after the n-th unexpected failure in a row: doubling, at most a lease round."""
        return float(min(self.rebalance_s, self.interval_s * 2 ** min(failures, 16)))
