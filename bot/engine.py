"""The engine: a bounded queue of events, stored before acted on, fed to detectors, turned into actions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from groomguard import tuning, workspace
from groomguard.actions import ChildNotice, Enforcement, ModAlert, Sink
from groomguard.batching import BatchQueue
from groomguard.cases import Audit, Case, CaseBook
from groomguard.config import Settings
from groomguard.detectors import REGISTRY
from groomguard.detectors.base import Detector, check_detector
from groomguard.detectors.rejections import PENDING_REQUESTS, RejectionsDetector, RejectionsSettings, due_expiries
from groomguard.events import (
    EVENT_TYPES,
    AgeBand,
    AgeDeclared,
    BaseEvent,
    ContactAnswered,
    ContactRequested,
    MessageSent,
    ModeratorDecision,
)
from groomguard.findings import Finding
from groomguard.notices import NoticeBook
from groomguard.ordering import HELD_ANSWERS, AnswerHold
from groomguard.pictures import CardPicture, picture_for_alert
from groomguard.port import EngineStats
from groomguard.state import CommunityState
from groomguard.storage import ActionT, BatchWrite, Database, PipelinedStore, StaleLease, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long recent contact edges stay in memory; detector windows longer than this are capped.
CONTACT_WINDOW_HOURS = 24 * 30
PURGE_EVERY_BATCHES = 2_000
REDELIVER_EVERY_S = 30.0
PURGE_EVERY_S = 3600.0
#: How often, when the outbox is quiet, requests to minors left unanswered are checked for expiry.
EXPIRE_EVERY_S = 300.0
#: Detector-memory name under which each community's clock (latest event time processed) is kept.
CLOCK_MEMORY = "engine.clock"
#: With a pipelined store, events processed while earlier commits still run before the engine waits
#: for them all and moves the store's read view on (see `_settle`), in batch sizes. More overlaps more;
#: the overlay merged into reads grows with it. Batches processed while the previous commit still runs
#: are held and handed over together once it lands (group commit): every transaction costs the writer
#: a round of its own (a writer thread also a wait for the GIL per statement), so many small commits
#: fall further behind.
SETTLE_EVERY_BATCHES = 8
#: ... and, however well the writer keeps up, after this many batches since the read view last moved:
#: the overlay (and the read caches, and the WAL behind the pinned view) grow until it moves. Without
#: it, a writer that kept up (the writer process) let a long replay's overlay grow without end.
OVERLAY_BATCHES = 32
#: Account-pattern detectors whose open case makes a child contacted by that account get a notice.
PATTERN_DETECTORS = frozenset({"fan_out", "rejections", "new_account_contact"})
#: Action ids this process remembers having handed to every sink (the newest; older ones are dropped): a
#: second path reaching the same action (a rebalance's or idle redelivery while the dispatcher still holds
#: it) records the delivery again instead of handing it over twice.
HANDED_REMEMBERED = 50_000


@dataclass
class _Held:
    """What held batches produced beyond the state's own pending rows, until handed to the store together."""

    events: int = 0
    actions: list[ActionT] = field(default_factory=list)
    findings: list[tuple[int, Finding]] = field(default_factory=list)
    #: Cases changed, by id, in the order first changed (the objects are current; one row each).
    cases: dict[int, Case] = field(default_factory=dict)
    #: Each case's clock in the batch that last changed it (its row is decayed to that, as if committed then).
    case_clocks: dict[int, datetime] = field(default_factory=dict)
    audit: list[Audit] = field(default_factory=list)
    notices: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    #: Each community's clock after the latest held batch that saw it.
    clocks: dict[str, datetime] = field(default_factory=dict)

    def add(
        self,
        events: int,
        actions: list[ActionT],
        findings: list[tuple[int, Finding]],
        cases: list[Case],
        audit: list[Audit],
        notices: list[tuple[str, str, str, str, str]],
        clocks: dict[str, datetime],
        watermark_at: datetime,
    ) -> None:
        self.events += events
        self.actions.extend(actions)
        self.findings.extend(findings)
        for case in cases:
            self.cases[case.id] = case
            self.case_clocks[case.id] = clocks.get(case.community, watermark_at)
        self.audit.extend(audit)
        self.notices.extend(notices)
        self.clocks.update(clocks)


class _Role(Enum):
    """What `_process` does with an event beyond folding it in and running detectors (see `_role_of`)."""

    AGE = 1  # an age declaration: one that lifts a minor band is a moderator's, and audited
    DECISION = 2  # a moderator's decision: acts on its case, read by no detector
    CONTACT = 3  # reaches other accounts: may warn children of an account under an open pattern case
    OTHER = 4


#: Each event type's role, found once per type (isinstance per event cost more than the rest of the dispatch).
_ROLES: dict[type, _Role] = {}


def _role_of(kind: type) -> _Role:
    role = (
        _Role.AGE
        if issubclass(kind, AgeDeclared)
        else _Role.DECISION
        if issubclass(kind, ModeratorDecision)
        else _Role.CONTACT
        if issubclass(kind, ContactRequested | MessageSent)
        else _Role.OTHER
    )
    _ROLES[kind] = role
    return role


class EngineError(RuntimeError):
    """The engine stopped because its store failed; events not yet stored must be re-sent."""


def build_detectors(settings: Settings) -> list[Detector]:
    """Instantiate every enabled detector in the registry with its validated settings."""
    detectors = []
    for spec in REGISTRY:
        det_settings = settings.detector(spec.name)
        if det_settings.enabled:  # checked before building: a disabled detector loads no model
            detectors.append(spec.factory(det_settings))
    return detectors


class Engine:
    """Owns the queue, the store, detectors, cases and the outbox; start/stop are its lifecycle."""

    def __init__(
        self,
        settings: Settings,
        sinks: Sequence[Sink] = (),
        *,
        store: Store,
        detectors: Sequence[Detector] | None = None,
        clock: Callable[[], datetime] | None = None,
        hold_actions: bool = False,
    ) -> None:
        self.settings = settings
        #: Leave every action in the outbox for the process that runs the platforms (a CLI decision's card
        #: edit must reach Discord or Matrix, not be marked delivered by a process with no adapters).
        self.hold_actions = hold_actions
        #: The wall clock (injectable for tests): retention and the future-time bound use it.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.store = store
        self.sinks = list(sinks)
        given = detectors if detectors is not None else build_detectors(settings)
        self.detectors = [d for d in map(check_detector, given) if d.enabled]
        # Each event type goes only to the detectors that declare they read it (`handles`): saves a
        # coroutine per detector per event.
        self._routes: dict[type, list[Detector]] = {
            cls: [d for d in self.detectors if issubclass(cls, d.handles)] for cls in EVENT_TYPES.values()
        }
        #: Answers stored before their requests wait for them (groomguard.ordering); only rejections reads
        #: requests' answers, so without it there is nothing to wait for.
        self._answers: AnswerHold | None = None
        if any(d.name == RejectionsDetector.name for d in self.detectors):
            rejections = settings.detector(RejectionsDetector.name)
            assert isinstance(rejections, RejectionsSettings)
            self._answers = AnswerHold(
                timedelta(hours=rejections.reorder_window_hours), timedelta(hours=rejections.window_hours)
            )
        self._fresh_memory()
        self.stats = EngineStats()
        self._queue: BatchQueue[BaseEvent] = BatchQueue(settings.engine.queue_size)
        self._outbox: asyncio.Queue[list[ActionT]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        #: Memory may not match the store: a batch failed half-way (its changes to memory stay, its rows were
        #: rolled back, a shared store handed its events out), or a rebuild did not finish. Nothing is
        #: processed on it; the next catch-up or lease round rebuilds it from the store first.
        self._stale = False
        self._batches = 0
        self._watermark_at: datetime | None = None
        self._watermark = 0
        #: Called with (detector name, seconds) after every inspect; groomguard.app.metrics plugs its histogram in here.
        self.detector_timer: Callable[[str, float], None] | None = None
        # One writer: the queue worker, webhook ingest and erasure never interleave inside a batch.
        self._lock = asyncio.Lock()
        #: The store, when its batches commit behind processing (SQLite: see SqliteStore.submit_batch); set at start.
        self._pipe: PipelinedStore | None = None
        #: What this engine asked of the interpreter while it runs (None: nothing, or given back).
        self._pace: tuning.Pace | None = None
        #: Events processed since the store's read view last moved (see OVERLAY_BATCHES).
        self._since_settle = 0
        #: Submitted, not yet durable batches in order: (commit future, their actions, event count).
        self._inflight: list[tuple[asyncio.Future[None], list[ActionT], int]] = []
        #: Processed batches not yet handed to a pipelined store (see `_commit_held`).
        self._held = _Held()
        #: A WAL checkpoint running after the last settle: reads stay released and batches held until it is
        #: done (`_end_checkpoint`), so the engine processes on instead of waiting for it.
        self._checkpoint: asyncio.Future[None] | None = None
        self._last_expiry = time.monotonic()
        #: One delivery at a time (dispatcher, rebalance, redelivery), so an action is in flight on one path only.
        self._delivering = asyncio.Lock()
        #: Action ids handed to every sink by this process -> whether the store has recorded it (`_deliver`).
        self._handed: dict[str, bool] = {}

    def _fresh_memory(self) -> None:
        """Empty in-memory state, cases, notice history and clocks (filled from the store by `_load`)."""
        self.state = CommunityState(
            self.store.accepted_contacts,
            timedelta(hours=CONTACT_WINDOW_HOURS),
            reader=self.store,  # type: ignore[arg-type]
        )
        self.cases = CaseBook(self.settings.cases)
        self.notices = NoticeBook(self.settings.notices)
        #: Latest event time processed per community (persisted as detector memory, restored at start):
        #: each community's own clock for decaying its cases, so one community never moves another's.
        self._clocks: dict[str, datetime] = {}

    async def _rebuild(self) -> None:
        """Empty memory and load it again from the store (the writer lock held). A shared store's snapshot also
        resets what it handed out to the committed watermarks. If loading fails, memory stays marked stale."""
        self._stale = True
        self._fresh_memory()
        await self._load()
        self._stale = False
        if isinstance(self._failure, getattr(self.store, "transient_errors", ())):
            self._reopen_intake()

    def _reopen_intake(self) -> None:
        """A shared store's database error stopped the intake; memory is rebuilt from the store now, so take
        events again, as a restart would (a SQLite engine's failure stays final: it has no follower)."""
        log.warning("engine taking events again: memory rebuilt from the store after: %s", self._failure)
        self._failure = None
        self._queue.reopen()
        if self._tasks and self._tasks[0].done():
            self._tasks[0] = asyncio.create_task(self._run(), name="groomguard-engine")

    async def _load(self) -> None:
        """Rebuild memory from the store's snapshot: accounts, open cases, notices, watermark, rankings, clocks."""
        snap = await self.store.snapshot(CONTACT_WINDOW_HOURS)
        for community, acc in snap.accounts:
            self.state.accounts[(community, acc.account)] = acc
        self.cases.load(snap.cases, snap.next_case_id, snap.dismissals, snap.case_ids)
        self.notices.load(snap.notices)
        self._watermark = snap.watermark
        self._watermark_at = snap.watermark_at
        await self.state.restore()
        if self._answers is not None:
            await self._answers.load(self.state.memory_book)
        for row in await self.state.memory_book.rows(CLOCK_MEMORY):
            if row.value is not None:
                self._clocks[row.community] = datetime.fromisoformat(json.loads(row.value))

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, rebuild memory, finish events stored but not processed, then accept new ones."""
        await self.store.open()
        engine = self.settings.engine
        self._pace = tuning.Pace(engine.gc_young_threshold, engine.switch_interval_us)
        tuning.hold(self._pace)
        try:
            await self._resume()
        except BaseException:
            self._release_pace()
            # The store's writer (a thread or a child process) must not outlive a start that failed: left
            # running, it keeps the process from exiting after the error is reported.
            try:
                await self.store.close()
            except Exception:
                log.exception("closing the store after a failed start failed too")
            raise
        self.stats.started = time.perf_counter()
        self._tasks = [
            asyncio.create_task(self._run(), name="groomguard-engine"),
            asyncio.create_task(self._dispatch(), name="groomguard-outbox"),
        ]

    async def _resume(self) -> None:
        pipelined = isinstance(self.store, PipelinedStore) and self.store.pipelined
        self._pipe = self.store if pipelined else None
        await self._load()
        await self._deliver(await self.store.pending_actions())
        if self._pipe is not None:
            self._pipe.pin_reads()
        recovered = await self.catch_up()
        await self.purge()
        if recovered:
            log.info("resumed after restart: processed %d stored events past the watermark", recovered)

    def _release_pace(self) -> None:
        """Give back this engine's ask of the interpreter (see groomguard.tuning), once."""
        pace, self._pace = self._pace, None
        if pace is not None:
            tuning.release(pace)

    async def stop(self) -> None:
        """Drain what is queued, deliver pending actions, then close the store."""
        try:
            if self._tasks and self._failure is None:
                await self.drain()
        finally:
            # Whatever failed above, the store closes (its writer threads would keep the process alive),
            # once a checkpoint still running has ended (a failed one was logged).
            if self._checkpoint is not None:
                await asyncio.gather(self._checkpoint, return_exceptions=True)
                self._checkpoint = None
            await self._close()

    async def _close(self) -> None:
        """Cancel the engine's tasks and close the store (also after a failed drain)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.store.close()
        finally:
            self._release_pace()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- input ----------------------------------------------------------------------------

    async def submit(self, event: BaseEvent) -> None:
        """Queue an event, waiting while the queue is full (back-pressure)."""
        self._raise_if_failed()
        self.stats.received += 1
        await self._queue.put(event)

    async def submit_many(self, events: Sequence[BaseEvent]) -> None:
        """Queue events in order, as `submit` does each (one call for many: a replay or a sync page)."""
        self._raise_if_failed()
        self.stats.received += len(events)
        await self._queue.put_many(events)

    async def ingest(self, events: Sequence[BaseEvent]) -> int:
        """Store and process events now, bypassing the queue; returns how many were new.

        Used where the caller must know the events are durable before it answers (webhooks).
        """
        self._raise_if_failed()
        self.stats.received += len(events)
        async with self._lock:
            try:
                fresh = await self._handle(list(events))
                # The caller answers "stored" once this returns: wait for the commits behind processing.
                await self._settle()
                return fresh
            except Exception as error:
                # Stored-but-unprocessed events must not be skipped by a later batch's watermark:
                # stop here, so a restart resumes from the last committed watermark.
                log.exception("engine stopped: store failure while ingesting %d events", len(events))
                self._fail(error)
                raise

    async def catch_up(self, fetch: Callable[[int], Awaitable[list[tuple[int, BaseEvent]]]] | None = None) -> int:
        """Process stored-but-unprocessed batches from `fetch(batch_size)` under the writer lock until none are left.

        The default fetch resumes past the watermark (restart recovery); a shared PostgreSQL store
        passes its own, for events other engines stored.
        """
        fetch = fetch or (lambda n: self.store.events_after(self._watermark, n))
        done = 0
        async with self._lock:
            if self._stale:
                await self._rebuild()
            try:
                while batch := await fetch(self.settings.engine.batch_size):
                    await self._process(batch)
                    done += len(batch)
                await self._settle()
            except Exception:
                # A follower retries after a database error: from the store's committed state, not from what
                # the failed batch left in memory and in the shared store's handed-out marks.
                self._stale = True
                raise
        return done

    async def rebalance(self, step: Callable[[], Awaitable[bool]]) -> bool:
        """Run `step` (a shared store's lease round) between batches; when it changed which communities this
        engine processes, rebuild memory from the store for exactly those, queue their waiting actions for the
        dispatcher and catch up from their watermarks. Returns whether anything changed.

        The actions go through the outbox rather than being delivered here, so a slow platform never holds
        up the catch-up of partitions just taken over."""
        # Not while an action is being handed over: a partition released now would have that action (still
        # undelivered in the outbox) posted by its taker as well. The delivery lock first: a sink may record
        # an audit row (the writer lock) while it posts, and processing need not wait for a slow post.
        async with self._delivering, self._lock:
            if not await step() and not self._stale:
                return False
            await self._rebuild()
        pending = await self.store.pending_actions()
        if pending and not self.hold_actions:
            self._outbox.put_nowait(pending)
        await self.catch_up()
        return True

    def reject(self, source: str, count: int = 1) -> None:
        """Count inputs an adapter refused as invalid, so /metrics and summaries show them."""
        self.stats.rejected[source] = self.stats.rejected.get(source, 0) + count

    async def decide(self, decision: ModeratorDecision) -> int:
        """Store and apply a moderator's decision now (1 if new, 0 if a repeat of one already taken)."""
        return await self.ingest([decision])

    async def known_bodies(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored JSON of those event keys the store already holds (to tell a resend from a conflict)."""
        known_bodies = getattr(self.store, "known_bodies", None)
        return await known_bodies(keys) if known_bodies is not None else {}

    # -- case queries (groomguard.port) -------------------------------------------------------

    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Stored cases, riskiest first, as plain rows."""
        return await self.store.list_cases(status, limit)

    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None:
        """One stored case with its findings and audit rows, or None."""
        return await self.store.get_case(case_id)

    def case_card(self, case: Case, now: datetime) -> ModAlert:
        """The alert card a case would show now (for a moderator's look-up; nothing is posted)."""
        return self.cases.render(case, now)

    async def community_clocks(self) -> dict[str, datetime]:
        """Each community's clock (latest event time processed there): 'risk now' is read at it."""
        return dict(self._clocks)

    async def case_queue(
        self,
        *,
        status: str | None = None,
        community: str | None = None,
        platform: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Case summaries, highest risk now first (groomguard.workspace.case_queue on this engine's store)."""
        return await workspace.case_queue(
            self.store,
            self.settings.cases.half_life_hours,
            dict(self._clocks),
            status=status,
            community=community,
            platform=platform,
            limit=limit,
        )

    async def case_detail(self, case_id: int) -> tuple[dict[str, Any], ModAlert] | None:
        """One case as moderators judge it (groomguard.workspace.detail) and its card, both at its community's clock."""
        found = await self.store.get_case(case_id)
        if found is None:
            return None
        case, findings, audit = found
        now = workspace.clock_for(case, self._clocks)
        return workspace.detail(case, findings, audit, now, self.settings.cases.half_life_hours), self.cases.render(
            case, now
        )

    def case_risk(self, case: Case, now: datetime) -> float:
        """A case's risk decayed to `now` with the configured half-life."""
        return case.risk(now, self.settings.cases.half_life_hours)

    async def pending_actions(self) -> list[ActionT]:
        """Actions still in the outbox (not yet delivered by every sink)."""
        return await self.store.pending_actions()

    async def case_picture(self, case_id: int) -> CardPicture | None:
        """The picture an alert card carries for a case (contact graph or view timeline PNG), or None."""
        return await picture_for_alert(self.store, case_id)  # type: ignore[arg-type]

    def case_link(self, case_id: int) -> str | None:
        """The case's address in the web view, when [web] public_url is set."""
        return self.settings.web.case_url(case_id)

    def adapter_tables(self) -> Database:
        """A new, unopened connection to the store's database for an adapter's own tables (migration 005).

        Same database, so a PostgreSQL deployment keeps them in PostgreSQL and `forget` reaches them.
        """
        return self.store.tables()

    async def drain(self) -> None:
        """Wait until every queued event is processed and committed and every action handed to the sinks."""
        await self._queue.join()
        self._raise_if_failed()
        if self._inflight or self._held.events:
            async with self._lock:
                try:
                    await self._settle()
                except Exception as error:
                    log.exception("engine stopped: store failure while committing processed batches")
                    self._fail(error)
        await self._outbox.join()
        self._raise_if_failed()

    def clock_of(self, community: str) -> datetime | None:
        """The community's clock: the latest event time processed there ('risk now' is read at it)."""
        return self._clocks.get(community)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _fail(self, error: BaseException) -> None:
        """Stop the engine on a store failure: later submits raise, queued events are dropped (never
        acknowledged), and producers waiting for room get the error, so neither they nor `drain` hang. On a
        shared store a database error is not final: the follower's rebuild takes events again (`_reopen_intake`)."""
        self._failure = error
        # A shared store's follower may go on processing (other engines' events): only on rebuilt memory.
        self._stale = True
        dropped = self._queue.close(EngineError(f"engine stopped: {error}"))
        if dropped:
            # Not kept anywhere (a file of them would escape expiry and erasure): counted and said, never silent.
            self.stats.dropped += dropped
            log.error(
                "engine stopped: %d queued events dropped, neither stored nor acknowledged (webhook senders were "
                "refused and resend; events from a chat platform are not fetched again)",
                dropped,
            )

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise EngineError(f"engine stopped: {self._failure}") from self._failure

    # -- processing -----------------------------------------------------------------------

    async def _run(self) -> None:
        size = self.settings.engine.batch_size
        wait = self.settings.engine.batch_wait_ms / 1000
        while True:
            if (self._inflight or self._held.events) and self._queue.empty():
                # Nothing more to overlap with: make what was processed durable and deliver its actions.
                try:
                    async with self._lock:
                        await self._settle()
                except Exception as error:
                    log.exception("engine stopped: store failure while committing processed batches")
                    self._fail(error)
                    return
            batch = await self._queue.get_batch(size, wait)
            try:
                async with self._lock:
                    # Another path (ingest, drain) may have failed while this one waited for the lock:
                    # nothing may be processed on top of its half-applied state.
                    if self._failure is not None:
                        self._queue.task_done(len(batch))
                        return
                    await self._handle(batch)
            except Exception as error:
                # The store failed: stop taking events so nothing is acknowledged that was not kept.
                log.exception("engine stopped: store failure while handling %d events", len(batch))
                self._queue.task_done(len(batch))
                self._fail(error)
                return
            self._queue.task_done(len(batch))

    def time_problem(self, event: BaseEvent) -> str | None:
        """Why an event's time is refused (more than engine.max_future_seconds ahead of now), or None."""
        ahead = (event.at - self.clock()).total_seconds()
        allowed = self.settings.engine.max_future_seconds
        if ahead > allowed:
            return (
                f"at: {event.at.isoformat()} is {int(ahead)} s in the future; at most {allowed} s is allowed "
                "(check the sender's clock, or raise engine.max_future_seconds)"
            )
        return None

    def _admit(self, batch: list[BaseEvent]) -> list[BaseEvent]:
        """Drop events dated too far in the future, counted and logged: one bad clock must not age all data."""
        # One clock reading per batch: the bound moves by milliseconds within one.
        latest = self.clock() + timedelta(seconds=self.settings.engine.max_future_seconds)
        kept = []
        for event in batch:
            if event.at <= latest or (problem := self.time_problem(event)) is None:
                kept.append(event)
                continue
            self.reject("future_time")
            log.warning("refused event %s from %s: %s", event.key, event.community, problem)
        return kept

    async def _handle(self, batch: list[BaseEvent]) -> int:
        if self._stale:
            # A follower's catch-up failed (the lock is free again): its memory and a shared store's handed-out
            # marks are past the rolled-back batch, which must be processed again before anything new.
            await self._rebuild()
        batch = self._admit(batch)
        if not batch:
            return 0
        fresh = await self.store.append_events(batch)
        self.stats.duplicates += len(batch) - len(fresh)
        self.stats.stored += len(fresh)
        if fresh:
            await self._process(fresh)
        return len(fresh)

    async def _process(self, items: list[tuple[int, BaseEvent]]) -> None:
        actions: list[ActionT] = []
        findings: list[tuple[int, Finding]] = []
        clocks: dict[str, datetime] = {}
        lifted: list[Audit] = []
        for _seq, event in items:
            seen = clocks.get(event.community)
            if seen is None or event.at > seen:
                clocks[event.community] = event.at
            role = _ROLES.get(type(event)) or _role_of(type(event))
            if role is _Role.AGE and event.band is not AgeBand.MINOR:  # type: ignore[attr-defined]
                lifted.extend(self._age_lift(event))
            elif (
                type(event) is ContactAnswered
                and self._answers is not None
                and await self._answers.early(event, self.state, self.state.memory_book)
            ):
                # Its request is not stored yet (another producer's): the accepted contact counts now, the
                # answer itself right after its request (below), as if it had come in order.
                self.state.hold_answer(event)
                continue
            else:
                self.state.apply(event)
            if role is _Role.DECISION:
                actions.extend(self.cases.decide(event))  # type: ignore[arg-type]
                continue
            await self._inspect(event, actions, findings)
            if role is _Role.CONTACT:
                actions.extend(self._pattern_notices(event))
            if type(event) is ContactRequested and self._answers is not None and self._answers.waiting:
                now = max(clocks[event.community], self._clocks.get(event.community) or event.at)
                for answer in await self._answers.release(event, now, self.state.memory_book):
                    self.state.apply(answer)
                    await self._inspect(answer, actions, findings)
        last_seq, last_event = items[-1]
        self._watermark = last_seq
        self._watermark_at = max(self._watermark_at or last_event.at, last_event.at)
        for community, at in clocks.items():
            known = self._clocks.get(community)
            if known is None or at > known:
                self._clocks[community] = known = at
                # Persisted with the batch so a restart decays and expires with the same clock.
                self.state.memory_book.put(CLOCK_MEMORY, community, "", at.isoformat(), ())
            clocks[community] = known
        self._batches += 1
        dirty_cases, audit = self.cases.take_dirty()
        notices = self.notices.take_pending()
        self._held.add(len(items), actions, findings, dirty_cases, audit + lifted, notices, clocks, self._watermark_at)
        if self._pipe is not None:
            # Commit behind processing: actions reach the outbox once their batch is durable.
            self._reap()
            if self._checkpoint is not None and self._checkpoint.done():
                await self._end_checkpoint()
            if not self._inflight or self._inflight[-1][0].done():
                self._commit_held()
            self._since_settle += len(items)
            size = self.settings.engine.batch_size
            # What `_commit_held` just handed over counts as in flight, not also as held.
            unsettled = self._held.events + sum(count for _, _, count in self._inflight)
            if unsettled >= SETTLE_EVERY_BATCHES * size or self._since_settle >= OVERLAY_BATCHES * size:
                await self._settle()
        else:
            write = self._take_write()
            try:
                await self.store.commit_batch(write)
            except StaleLease as lost:
                # Another engine took over a partition of this batch (PostgreSQL): nothing was written, and
                # this batch's changes to memory are wrong for it. Rebuild from the store; what is still
                # this engine's is processed again.
                log.warning("%s", lost)
                await self._rebuild()
                return
            self.state.settle()
            self.stats.processed += len(items)
            if actions:
                self._outbox.put_nowait(actions)
        if self._batches % PURGE_EVERY_BATCHES == 0:
            await self.purge()

    def _take_write(self) -> BatchWrite:
        """Everything processed since the last hand-over, as one transaction up to the current watermark."""
        held, self._held = self._held, _Held()
        assert self._watermark_at is not None
        return BatchWrite(
            state=self.state.take_writes(),
            cases=list(held.cases.values()),
            findings=held.findings,
            actions=held.actions,
            notices=held.notices,
            audit=held.audit,
            watermark=self._watermark,
            watermark_at=self._watermark_at,
            half_life_hours=self.settings.cases.half_life_hours,
            memory=self.state.memory_book.take_pending(),
            clocks=held.clocks,
            case_clocks=held.case_clocks,
        )

    def _commit_held(self) -> None:
        """Queue the held batches' one transaction on a pipelined store (see SETTLE_EVERY_BATCHES); not while
        a checkpoint runs: the released reads must show what was committed when it began."""
        if self._pipe is None or not self._held.events or self._checkpoint is not None:
            return
        count, write = self._held.events, self._take_write()
        self._inflight.append((self._pipe.submit_batch(write), write.actions, count))

    async def _inspect(self, event: BaseEvent, actions: list[ActionT], findings: list[tuple[int, Finding]]) -> None:
        """Run the detectors that read `event`, collecting their findings' actions; a failing detector is
        logged and skipped for this event only."""
        timer = self.detector_timer
        for detector in self._routes.get(type(event), self.detectors):
            started = time.perf_counter() if timer is not None else 0.0
            try:
                found = await detector.inspect(event, self.state)
            except Exception:
                self.stats.detector_errors += 1
                log.exception("detector %s failed on event %s; skipped for this event", detector.name, event.key)
                continue
            finally:
                if timer is not None:
                    timer(detector.name, time.perf_counter() - started)
            for finding in found:
                actions.extend(self._on_finding(finding, findings))

    def _reap(self) -> None:
        """Hand the actions of batches whose commit is done (in order) to the outbox."""
        while self._inflight and self._inflight[0][0].done():
            future, actions, count = self._inflight.pop(0)
            if future.exception() is not None:
                # Left in place (and so not delivered); `_settle` raises it.
                self._inflight.insert(0, (future, actions, count))
                return
            self.stats.processed += count
            if actions:
                self._outbox.put_nowait(actions)

    async def _settle(self) -> None:
        """Wait until every submitted batch is durable, deliver their actions, and move the store's reads on.

        The writer lock must be held. Raises the store's failure; nothing after a failed batch commits.
        """
        if self._pipe is None:
            return
        await self._end_checkpoint()
        self._commit_held()
        await self._pipe.settle()
        # Every batch future is one of the store's jobs; gathering them again raises a failed one's error.
        await asyncio.gather(*(future for future, _, _ in self._inflight))
        self._reap()
        self._since_settle = 0
        # Every row handed over is now committed: the state drops its overlay as the read view moves.
        self._pipe.release_reads(hold=True)
        self.state.settle()
        self._checkpoint = self._pipe.start_checkpoint()
        if self._checkpoint is None:
            self._pipe.pin_reads()

    async def _end_checkpoint(self) -> None:
        """Wait for a running checkpoint (raising its failure) and pin reads again: batches may commit."""
        if self._checkpoint is None or self._pipe is None:
            return
        try:
            await self._checkpoint
        finally:
            self._checkpoint = None
            self._pipe.pin_reads()

    def _age_lift(self, event: AgeDeclared) -> list[Audit]:
        """Apply an age that would lift a minor band: only a moderator may, and that is audited."""
        before = self.state.accounts.get((event.community, event.account))
        self.state.apply(event)
        if before is None or not before.is_minor:
            return []
        after = self.state.accounts.get((event.community, event.account))
        if after is not None and after.is_minor:
            log.info(
                "kept %s in %s a minor: a %s declaration (event %s) may not lift a minor band, only a moderator",
                event.account,
                event.community,
                event.source.value,
                event.key,
            )
            return []
        detail = {"account": event.account, "from": "minor", "to": event.band.value, "event": event.key}
        return [Audit(event.at, "moderator", "age_band_lifted", event.community, None, detail)]

    def _on_finding(self, finding: Finding, findings: list[tuple[int, Finding]]) -> list[ActionT]:
        self.stats.findings += 1
        out: list[ActionT] = []
        opened = self.cases.next_id
        case, alert = self.cases.add_finding(finding)
        if self.cases.next_id != opened:
            self.stats.cases_opened += 1
        findings.append((case.id, finding))
        if alert is not None:
            if alert.is_update:
                self.stats.alert_updates += 1
            else:
                self.stats.alerts += 1
            out.append(alert)
        under_suspicion = finding.child is not None and (finding.community, finding.child) in self.cases.active
        notice = self.notices.notice_for(finding, case.id, child_under_suspicion=under_suspicion)
        if notice is not None:
            self.stats.notices += 1
            out.append(notice)
        self.stats.notices_suppressed = self.notices.suppressed
        return out

    def _pattern_notices(self, event: BaseEvent) -> list[ChildNotice]:
        """Warn children whom an account with an open fan_out, rejections or new-account case contacts.

        A contact request reaches its target; a private message its recipients; a group message the
        children it mentions or replies to. Only once the case has an alert card, only minors who are not
        suspects themselves, rate-limited like every notice; nothing goes to the suspect.
        """
        if isinstance(event, ContactRequested):
            sender = event.source
        elif isinstance(event, MessageSent):
            sender = event.author
        else:
            return []
        case = self.cases.active.get((event.community, sender))
        # Only a case moderators have a card for: a finding below the alert threshold (a new account's
        # first few requests) is not enough to tell a child to be careful of someone.
        if case is None or case.alert_version == 0 or not PATTERN_DETECTORS & case.reasons.keys():
            return []
        if isinstance(event, ContactRequested):
            children: tuple[str, ...] = (event.target,)
        else:
            assert isinstance(event, MessageSent)
            children = event.recipients if event.private else (*event.mentions, event.reply_to_author or "")
        out = []
        for child in dict.fromkeys(c for c in children if c and c != sender):
            account = self.state.accounts.get((event.community, child))
            if account is None or not account.is_minor or (event.community, child) in self.cases.active:
                continue
            notice = self.notices.pattern_notice(
                event.platform, event.community, child, sender, case.id, event.at, f"pattern:{event.key}"
            )
            if notice is not None:
                self.stats.notices += 1
                out.append(notice)
        self.stats.notices_suppressed = self.notices.suppressed
        return out

    async def purge(self) -> dict[str, int]:
        """Apply retention on the wall clock: drop message text and raw events older than configured.

        Retention is measured from now, never from event time: an event dated in the future cannot make
        everything look old (ingest also refuses events too far ahead, see `_admit`). Expired detector
        memory is hidden from detectors at once (in event time) and deleted once it expired longer ago
        than message retention: events can arrive late or out of order, and a row deleted too early
        would let a detector repeat a finding.
        """
        self._last_purge = time.monotonic()
        s = self.settings.store
        now = self.clock()
        await self._settle()
        removed = await self.store.purge_expired(now, s.message_retention_days, s.event_retention_days)
        if self._answers is not None:
            removed["held_answers_expired"] = self._answers.prune(self._clocks)
        purge_memory = getattr(self.store, "purge_memory", None)
        if purge_memory is not None:
            removed["detector_memory"] = await purge_memory(now - timedelta(days=s.message_retention_days))
        if self._pipe is not None:
            # Reads pinned before the purge would still show the purged rows.
            self._pipe.release_reads()
            self.state.settle()
            self._pipe.pin_reads()
        log.info("retention purge removed %s", removed)
        return removed

    async def expire_requests(self) -> int:
        """Ingest, as `expired` answers, the requests to minors unanswered past `detectors.rejections.expire_after_hours`
        by the wall clock (`groomguard.detectors.rejections.due_expiries`); returns how many were new.

        The rejections detector owns expiry: no adapter invents expired answers, and on every platform an
        account whose requests go unanswered is found once they expire, not only at its next request.
        """
        self._last_expiry = time.monotonic()
        if not any(d.name == RejectionsDetector.name for d in self.detectors):
            return 0
        settings = self.settings.detector(RejectionsDetector.name)
        assert isinstance(settings, RejectionsSettings)
        async with self._lock:
            # Rows come straight from the store: make every batch processed so far part of it first.
            await self._settle()
            rows = await self.state.memory_book.rows(PENDING_REQUESTS)
        expired = due_expiries(rows, self.clock(), settings)
        return await self.ingest(expired) if expired else 0

    async def forget(self, account: str, community: str | None = None) -> dict[str, int]:
        """Erase one account's data from memory and the store (the right to erasure)."""
        async with self._lock:
            await self._settle()
            # A checkpoint still running would hold the WAL the erasure truncates.
            await self._end_checkpoint()
            if self._pipe is not None:
                # An open read snapshot would keep erased rows readable and block the WAL truncation.
                self._pipe.release_reads()
            self.state.forget(account, community)
            self.cases.forget(account, community)
            self.notices.forget(account, community)
            if self._answers is not None:
                self._answers.forget(account, community)
            # Action ids can name the account (a child notice's does): the delivery memo must not keep it.
            for ident in [i for i in self._handed if account in i]:
                del self._handed[ident]
            for detector in self.detectors:
                detector.forget(account, community)
            try:
                return await self.store.forget(account, community)
            finally:
                if self._pipe is not None:
                    self._pipe.pin_reads()

    async def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        detail: dict[str, Any],
        community: str | None = None,
        case_id: int | None = None,
    ) -> None:
        """Record something an adapter saw (a refused button press, a closed DM) outside any batch transaction."""
        async with self._lock:
            await self.store.audit(at, actor, action, detail, community=community, case_id=case_id)

    async def store_write(self, write: Callable[[Store], Awaitable[T]]) -> T:
        """Run one small store write outside any batch, under the writer lock (web sign-in links)."""
        async with self._lock:
            return await write(self.store)

    def community_now(self, community: str) -> datetime | None:
        """The latest event time processed in `community`: "now" for its cases' risk (None before any event)."""
        return self._clocks.get(community)

    # -- output ---------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            try:
                actions = await asyncio.wait_for(self._outbox.get(), REDELIVER_EVERY_S)
            except TimeoutError:
                # Quiet time: retry what a sink could not take earlier (a platform that was offline),
                # and apply retention on a clock so quiet communities are purged too.
                await self.redeliver()
                if time.monotonic() - self._last_purge >= PURGE_EVERY_S:
                    async with self._lock:
                        await self.purge()
                if time.monotonic() - self._last_expiry >= EXPIRE_EVERY_S:
                    try:
                        await self.expire_requests()
                    except Exception:  # ingest has stopped the engine and logged why; delivery goes on
                        log.exception("request expiry failed")
                continue
            try:
                await self._deliver(actions)
            finally:
                self._outbox.task_done()

    async def redeliver(self) -> int:
        """Hand every action still in the outbox to the sinks again; sinks dedupe on action_id."""
        pending = await self.store.pending_actions()
        if pending:
            await self._deliver(pending)
        return len(pending)

    async def _deliver(self, actions: Sequence[ActionT]) -> None:
        """Hand each action to every sink and record it delivered at once, one action at a time.

        The record follows each handoff immediately (not the batch's, not behind the writer lock): a process
        killed mid-delivery leaves at most the one action it was handing over unrecorded, which the process
        that takes its partitions hands over again (sinks dedupe on action_id). Actions of communities this
        engine no longer processes (a partition handed to another engine) are left to their new owner; a
        lease round waits for the handoff in flight (`rebalance`), so a partition is never handed away while
        one of its actions is being posted, to be posted again by the taker.
        """
        if self.hold_actions:
            return
        processes = getattr(self.store, "processes", None)
        # Held per action, not per list: a lease round waits for the one handoff in flight, no more.
        for action in actions:
            async with self._delivering:
                ident = action.action_id
                handed = self._handed.get(ident)
                if handed is None:
                    if processes is not None and not processes(action.community):
                        continue
                    if not await self._hand_over(action):
                        continue
                    self._handed[ident] = False
                    if len(self._handed) > HANDED_REMEMBERED:
                        del self._handed[next(iter(self._handed))]
                elif handed:
                    continue  # handed and recorded: another path had it queued too
                try:
                    await self.mark_delivered([ident])
                except Exception:
                    # Handed over but not recorded: it stays in the outbox, and the next redelivery records it
                    # again without handing it over a second time.
                    self.stats.delivery_errors += 1
                    log.exception("could not record action %s as delivered; recording it again later", ident)
                    continue
                if ident in self._handed:
                    self._handed[ident] = True

    async def _hand_over(self, action: ActionT) -> bool:
        """Give one action to every sink; False when one failed (it stays in the outbox for a later redelivery)."""
        if isinstance(action, Enforcement):
            self.stats.enforcements += 1
        ok = True
        for sink in self.sinks:
            try:
                await sink.deliver(action)
            except Exception:
                ok = False
                self.stats.delivery_errors += 1
                log.exception(
                    "sink %s failed to deliver %s; it stays in the outbox", type(sink).__name__, action.action_id
                )
        return ok

    async def mark_delivered(self, action_ids: Sequence[str]) -> None:
        """Record deliveries now, without the writer lock: the store keeps them apart from batch transactions
        (one statement of its own between them on SQLite's one writer, its own connection on PostgreSQL)."""
        await self.store.mark_delivered(action_ids, datetime.now(UTC))


__all__ = ["HELD_ANSWERS", "ChildNotice", "Engine", "EngineError", "EngineStats", "ModAlert", "build_detectors"]
