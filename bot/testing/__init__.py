"""Test helpers, one clearly named module outside the product layers: event factories, a clock, `MemorySink`, an engine
in a temp dir; `groomguard.testing.simulate` generates a community for tests and benchmarks. It ships (bench/, examples/
and embedders use it) but nothing in the product imports it: the import-linter "layers" contract keeps it on top.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.app.runtime import build_engine
from groomguard.config import Settings, load_settings
from groomguard.engine import Engine
from groomguard.events import (
    AgeBand,
    AgeDeclared,
    AgeSource,
    Answer,
    ContactAnswered,
    ContactKind,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MessageSent,
    ModeratorDecision,
    RegionDeclared,
    StandingDeclared,
    StandingKind,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class MemorySink:
    """Keeps actions in a list; for tests and embedding."""

    def __init__(self) -> None:
        self.actions: list[ModAlert | ChildNotice | Enforcement] = []

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        self.actions.append(action)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [a for a in self.actions if isinstance(a, kind)]


class EventFactory:
    """Builds valid events for one community with unique ids and a controllable clock."""

    def __init__(self, community: str = "test-community", platform: str = "test", start: datetime = T0) -> None:
        self.community = community
        self.platform = platform
        self.now = start
        self._ids = itertools.count(1)

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta) if delta else timedelta(seconds=1)
        return self.now

    def _base(self, at: datetime | None) -> dict[str, Any]:
        return {
            "event_id": f"e{next(self._ids)}",
            "platform": self.platform,
            "community": self.community,
            "at": at or self.tick(),
        }

    def joined(self, account: str, created_days_ago: float | None = 400, at: datetime | None = None) -> MemberJoined:
        base = self._base(at)
        created = base["at"] - timedelta(days=created_days_ago) if created_days_ago is not None else None
        return MemberJoined(**base, account=account, account_created_at=created)

    def age(
        self,
        account: str,
        band: AgeBand | str,
        source: AgeSource | str = AgeSource.ROLE,
        age: int | None = None,
        at: datetime | None = None,
    ) -> AgeDeclared:
        return AgeDeclared(**self._base(at), account=account, band=AgeBand(band), source=AgeSource(source), age=age)

    def minor(self, account: str) -> AgeDeclared:
        return self.age(account, AgeBand.MINOR)

    def adult(self, account: str) -> AgeDeclared:
        return self.age(account, AgeBand.ADULT)

    def region(self, account: str, region: str, at: datetime | None = None) -> RegionDeclared:
        return RegionDeclared(**self._base(at), account=account, region=region)

    def standing(
        self, account: str, standing: StandingKind | str, held: bool = True, at: datetime | None = None
    ) -> StandingDeclared:
        return StandingDeclared(**self._base(at), account=account, standing=StandingKind(standing), held=held)

    def contact(
        self,
        source: str,
        target: str,
        kind: ContactKind | str = ContactKind.FRIEND,
        request_id: str | None = None,
        at: datetime | None = None,
    ) -> ContactRequested:
        return ContactRequested(
            **self._base(at), source=source, target=target, kind=ContactKind(kind), request_id=request_id
        )

    def answer(
        self, source: str, target: str, answer: Answer | str, request_id: str | None = None, at: datetime | None = None
    ) -> ContactAnswered:
        return ContactAnswered(
            **self._base(at), source=source, target=target, answer=Answer(answer), request_id=request_id
        )

    def message(
        self,
        author: str,
        text: str,
        conversation: str = "general",
        private: bool = False,
        recipients: tuple[str, ...] = (),
        at: datetime | None = None,
        mentions: tuple[str, ...] = (),
        reply_to: str | None = None,
        reply_to_author: str | None = None,
    ) -> MessageSent:
        base = self._base(at)
        return MessageSent(
            **base,
            message_id=f"m-{base['event_id']}",
            author=author,
            conversation=conversation,
            private=private,
            recipients=recipients,
            text=text,
            mentions=mentions,
            reply_to=reply_to,
            reply_to_author=reply_to_author,
        )

    def view(self, viewer: str, author: str, count: int = 1, at: datetime | None = None) -> ContentViewed:
        base = self._base(at)
        return ContentViewed(**base, viewer=viewer, author=author, content_id=f"post-{base['event_id']}", count=count)

    def decision(
        self,
        moderator: str,
        case_id: int,
        decision: str,
        at: datetime | None = None,
        duration_minutes: int | None = None,
    ) -> ModeratorDecision:
        return ModeratorDecision(
            **self._base(at), moderator=moderator, case_id=case_id, decision=decision, duration_minutes=duration_minutes
        )  # type: ignore[arg-type]


def make_settings(db: Path, **overrides: Any) -> Settings:
    """Settings for tests: a store in `db`, small batches so tests see every code path."""
    settings = load_settings(None)
    settings.store.path = db
    settings.engine.batch_wait_ms = 1
    # Retention runs on the wall clock, and test data is dated 2026 (T0): keep it as long as allowed so
    # a restart's purge does not delete it. Tests of retention pass an explicit engine clock.
    settings.store.message_retention_days = 365
    settings.store.event_retention_days = 3650
    for dotted, value in overrides.items():
        section, _, key = dotted.partition("__")
        target: Any = settings
        parts = [section, *key.split("__")] if key else [section]
        for part in parts[:-1]:
            target = getattr(target, part)
        setattr(target, parts[-1], value)
    return settings


@asynccontextmanager
async def running_engine(
    db: Path, sink: MemorySink | None = None, clock: Callable[[], datetime] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Engine, MemorySink]]:
    """An engine on a real SQLite file, started and stopped around the block; `clock` pins its wall clock."""
    sink = sink or MemorySink()
    engine = build_engine(make_settings(db, **overrides), [sink], clock=clock)
    await engine.start()
    try:
        yield engine, sink
    finally:
        await engine.stop()


@contextmanager
def failing_commits(store: Any, error: BaseException) -> Iterator[None]:
    """Make every batch commit of `store` fail with `error` inside the block, awaited or pipelined.

    A store whose commits run behind processing (SqliteStore.submit_batch) reports the failure through
    the batch's future, as a failed transaction on its writer thread does; the events stay stored.
    """

    async def failing(batch: object) -> None:
        raise error

    def failing_submit(batch: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(error)
        return future

    real = store.commit_batch, getattr(store, "submit_batch", None)
    store.commit_batch = failing
    if real[1] is not None:
        store.submit_batch = failing_submit
    try:
        yield
    finally:
        store.commit_batch = real[0]
        if real[1] is not None:
            store.submit_batch = real[1]
