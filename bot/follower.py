"""The log follower: drives the engine over events other engines stored in a shared (PostgreSQL) log.

It lives beside the engine, not in a store backend: it decides when the engine processes, and reaches
the backend only through the `SharedLog` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

from groomguard.engine import Engine
from groomguard.events import BaseEvent

log = logging.getLogger(__name__)


@runtime_checkable
class SharedLog(Protocol):
    """A store several engines append to, of which one (the lease holder, `leader`) processes."""

    #: Errors of the backend a follower logs and retries after (a dropped connection, a restart).
    transient_errors: ClassVar[tuple[type[BaseException], ...]]
    leader: bool

    async def take_due(self, limit: int) -> list[tuple[int, BaseEvent]]: ...

    async def lease_free(self) -> bool: ...


class LogFollower:
    """Keeps a leader processing events other engines stored; tells a follower when the lease is free."""

    def __init__(
        self,
        engine: Engine,
        interval_s: float = 0.2,
        lease_check_s: float = 5.0,
        on_takeover: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_takeover = on_takeover
        self.interval_s = interval_s
        self.lease_check_s = lease_check_s
        #: Set on a follower when no engine holds the processing lease: restart to take over.
        self.takeover = asyncio.Event()
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
        """Process events that other engines stored; returns how many (leader only)."""
        engine, store = self.engine, self.store
        if not store.leader:
            return 0
        # Same path as Engine.start's recovery, under the engine's writer lock.
        return await engine.catch_up(store.take_due)

    async def _run(self) -> None:
        waited = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if self.store.leader:
                    await self.catch_up()
                    continue
                waited += self.interval_s
                if waited >= self.lease_check_s:
                    waited = 0.0
                    if await self.store.lease_free():
                        log.warning("processing lease is free (the leader stopped): restart this engine to take over")
                        self.takeover.set()
                        if self.on_takeover is not None:
                            self.on_takeover()
                        return
            except self.store.transient_errors:
                log.exception("log follower: database error; retrying")
