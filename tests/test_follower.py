"""The log follower and the partition reads it drives, without a database: what a lease lost during a read,
an unreadable stored body and an unexpected error do (the PostgreSQL runs are in tests/postgres)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from groomguard.events import dump_event
from groomguard.follower import LogFollower
from groomguard.store.partitions import Partitions
from groomguard.testing import EventFactory


class _Rows:
    """Stands in for an asyncpg connection's `fetch`: returns `rows`, running `during` while it "waits"."""

    def __init__(self, rows: list[tuple[int, int, str]], during: Any = None) -> None:
        self.rows, self.during = rows, during

    async def fetch(self, *args: Any) -> list[tuple[int, int, str]]:
        if self.during is not None:
            self.during()
        return self.rows


async def test_due_skips_a_partition_whose_lease_went_during_the_read_and_a_body_it_cannot_read(
    ev: EventFactory,
) -> None:
    parts = Partitions("postgresql://unused", count=4, lease_s=8.0)
    parts.held = {1: 0, 2: 0}
    good, also = dump_event(ev.adult("a")), dump_event(ev.adult("b"))
    old = good.replace(ev.now.isoformat().split("T")[0], "0001-01-01")  # refused now: before 1970
    assert old != good

    def renew_drops_partition_2() -> None:
        del parts.held[2]

    db = _Rows([(1, 1, good), (2, 2, also), (3, 1, old), (4, 1, also)], renew_drops_partition_2)
    handed = await parts.due(db, 10)  # type: ignore[arg-type]
    assert [seq for seq, _ in handed] == [1, 4], "partition 2's event is not ours; seq 3 cannot be read"
    assert parts.held == {1: 4}, "a lease found gone is not taken back by a read"
    assert parts.unreadable == 1
    assert set(parts._marks) == {1} and parts._marks[1][:2] == (4, 2)


class _Log:
    """A shared log whose every call works (the follower's protocol)."""

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError,)
    rebalance_every_s = 0.05

    async def take_due(self, limit: int) -> list[Any]:
        return []

    async def rebalance(self) -> bool:
        return False

    async def reconnect(self) -> None:
        self.reconnects = getattr(self, "reconnects", 0) + 1


class _Engine:
    """What LogFollower calls on an engine; `catch_up` fails in the ways listed in `failures`, then works."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.store = _Log()
        self.failures = failures
        self.calls = 0

    async def catch_up(self, fetch: Any) -> int:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 0

    async def rebalance(self, step: Any) -> bool:
        return bool(await step())


async def test_the_follower_outlives_an_unexpected_error_and_reconnects_after_a_database_error() -> None:
    engine = _Engine([OverflowError("date value out of range"), ConnectionError("server closed the connection")])
    follower = LogFollower(engine, interval_s=0.01, rebalance_s=0.05)  # type: ignore[arg-type]
    await follower.start()
    try:
        for _ in range(200):
            if engine.calls >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        await follower.stop()
    assert engine.calls >= 4, "still polling after both failures"
    assert engine.store.reconnects == 1, "the database error reopened the connection; the other did not"
