"""In-memory community state the detectors read, rebuilt from the store and written back in batches."""

from __future__ import annotations

import json
import math
from bisect import insort
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from groomguard.detectors.base import DetectorMemory
from groomguard.events import (
    REQUEST_KINDS,
    AgeBand,
    AgeDeclared,
    AgeSource,
    Answer,
    BaseEvent,
    ContactAnswered,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    RegionDeclared,
    StandingDeclared,
)
from groomguard.memory import MemoryBook
from groomguard.records import Account, ContactEdge, RequestRecord, Turn, ViewerHour, ViewShare

#: Which age sources may overwrite which: a stronger source always wins.
SOURCE_RANK = {
    AgeSource.TEXT: 0,
    AgeSource.SELF: 1,
    AgeSource.ROLE: 2,
    AgeSource.PLATFORM: 2,  # an age the platform verified itself is as good as a role
    AgeSource.MODERATOR: 3,
}

#: Most recent messages of one group conversation read back for addressing (alternating turns).
TURNS_READ = 32

AcceptedReader = Callable[[str, str], Awaitable[set[str]]]

#: Hours of per-viewer history folded into a view baseline at most; older buckets are pruned.
VIEW_HISTORY_HOURS = 24 * 14
VIEW_SWEEP_EVERY_HOURS = 24
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)

#: Memory rows of the community rankings (`record_rank`) are kept under "rank.<metric>".
RANK_MEMORY = "rank."

#: Zero-view hours folded one by one into a baseline before it is simply treated as empty.
MAX_ZERO_FOLD = 24 * 14


class StateReader(Protocol):
    """Cold reads the state makes from the store; everything the batch has not committed is merged in."""

    async def accepted_contacts(self, community: str, account: str) -> set[str]: ...

    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]: ...

    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]: ...

    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]: ...

    async def viewer_minor_authors(self, community: str, viewer: str, hour: int) -> set[str]: ...

    async def community_view_buckets(self, community: str, from_hour: int) -> list[tuple[int, int, int]]: ...

    async def accepted_degree(self, community: str, account: str) -> int: ...

    async def message_author(self, community: str, message_id: str) -> str | None: ...

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]: ...


class _NullReader:
    """Stands in for a store when the state is used alone (unit tests): nothing committed yet."""

    def __init__(self, accepted: AcceptedReader) -> None:
        self.accepted_contacts = accepted

    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]:
        return []

    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]:
        return []

    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]:
        return []

    async def viewer_minor_authors(self, community: str, viewer: str, hour: int) -> set[str]:
        return set()

    async def community_view_buckets(self, community: str, from_hour: int) -> list[tuple[int, int, int]]:
        return []

    async def accepted_degree(self, community: str, account: str) -> int:
        return len(await self.accepted_contacts(community, account))

    async def message_author(self, community: str, message_id: str) -> str | None:
        return None

    async def recent_turns(self, community: str, conversation: str, since: datetime, limit: int) -> list[Turn]:
        return []


@dataclass(slots=True)
class _ViewerStats:
    """One viewer's current hour and EWMA baseline of earlier hours' views of minors' content."""

    hour: int
    to_minors: int = 0
    total: int = 0
    authors: set[str] = field(default_factory=set)
    mean: float = 0.0
    var: float = 0.0
    hours: int = 0
    alpha: float = 0.1

    def fold(self, value: float) -> None:
        diff = value - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1 - self.alpha) * (self.var + diff * incr)
        self.hours += 1

    def fold_zeros(self, k: int) -> None:
        """`k` silent hours at once, in closed form (the same result as k calls of fold(0.0)).

        With x = 0 each step is m' = (1-a)m and v' = (1-a)(v + a m^2); k steps give
        m_k = d m and v_k = d (v + m^2 (1 - d)) with d = (1-a)^k.
        """
        if k <= 0:
            return
        d = (1 - self.alpha) ** k
        self.var = d * (self.var + self.mean * self.mean * (1 - d))
        self.mean *= d
        self.hours += k

    def advance(self, hour: int) -> None:
        """Close the current hour (and any silent hours since) into the baseline."""
        if hour <= self.hour:
            return
        self.fold(self.to_minors)
        gap = hour - self.hour - 1
        self.fold_zeros(min(gap, MAX_ZERO_FOLD))
        self.hours += max(0, gap - MAX_ZERO_FOLD)
        self.hour, self.to_minors, self.total, self.authors = hour, 0, 0, set()


@dataclass(slots=True)
class _Ranking:
    """Latest value per account for one community metric, and a cached quantile of them."""

    values: dict[str, tuple[float, datetime]] = field(default_factory=dict)
    cached: tuple[int, float, int] | None = None  # (hour, threshold, population)
    updates: int = 0


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def hour_of(at: datetime) -> int:
    return int(at.timestamp()) // 3600


def _room_order(entry: tuple[datetime, str, Turn]) -> tuple[datetime, str]:
    return entry[0], entry[1]


def _newest_first(
    stored: Sequence[Turn],
    stored_at: dict[str, datetime],
    room: Sequence[tuple[datetime, str, Turn]],
    since: datetime,
) -> Iterator[Turn]:
    """Merge committed turns (oldest first, by time then id) and the sorted overlay of uncommitted ones from
    the newest end: at most TURNS_READ since `since`; a committed copy of a repeated id wins."""
    i, j = len(stored) - 1, len(room) - 1
    for _ in range(TURNS_READ):
        committed = stored[i] if i >= 0 and stored[i].at >= since else None
        while j >= 0:
            at, message_id, _turn = room[j]
            if at < since:
                j = -1
            elif (twin := stored_at.get(message_id)) is not None and twin >= since:
                j -= 1
                continue
            break
        if j >= 0 and (committed is None or room[j][:2] > (committed.at, committed.message_id)):
            yield room[j][2]
            j -= 1
        elif committed is not None:
            yield committed
            i -= 1
        else:
            return


@dataclass
class PendingWrites:
    """Rows produced by applying a batch of events, written in the batch's one transaction."""

    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)
    regions: list[tuple[str, str, str]] = field(default_factory=list)
    contacts: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    requests: list[tuple[str, str, str, str, str, str, str]] = field(default_factory=list)
    answers: list[tuple[str, str | None, str, str, str, str]] = field(default_factory=list)
    accepted: list[tuple[str, str, str, str]] = field(default_factory=list)
    views: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    view_authors: set[tuple[str, str, int, str]] = field(default_factory=set)
    conversations: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # Message rows by (community, message_id), each as the last event on it left it: deletions are
    # written first, then upserts, then edits (see groomguard.store.base.batch_statements), so a message
    # deleted and sent again, or edited and then sent again, within one transaction ends as it would
    # had each event been written alone.
    messages: dict[tuple[str, str], tuple[str, str, str, str, str, str]] = field(default_factory=dict)
    edited_messages: dict[tuple[str, str], str] = field(default_factory=dict)  # text of kept messages
    deleted_messages: dict[tuple[str, str], None] = field(default_factory=dict)
    #: (community, account, standing, held 0/1, at) from StandingDeclared.
    standings: list[tuple[str, str, str, int, str]] = field(default_factory=list)
    #: (community, message_id, conversation, author, at) of group messages, for groomguard.addressing; the
    #: first of one id is kept (as the table's ON CONFLICT DO NOTHING would), after a deletion the next.
    turns: dict[tuple[str, str], tuple[str, str, str, str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(bool(getattr(self, name)) for name in self.__dataclass_fields__)


class CommunityState:
    """Accounts and recent contact, held in memory for speed; cold look-ups go to the store."""

    def __init__(
        self,
        accepted_reader: AcceptedReader,
        contact_window: timedelta,
        keep_text: bool = True,
        reader: StateReader | None = None,
    ) -> None:
        self._accepted_reader = accepted_reader
        self.contact_window = contact_window
        self.keep_text = keep_text
        # Contact edges, requests and view buckets live in the store, not here, so memory stays flat
        # however many edges a community has; the engine hands us the store's bound method, whose
        # owner is the reader unless one is given.
        owner = getattr(accepted_reader, "__self__", None)
        self.reader: StateReader = reader or (
            owner if hasattr(owner, "contacts_from") else _NullReader(accepted_reader)
        )  # type: ignore[assignment]
        self.accounts: dict[tuple[str, str], Account] = {}
        self._pending_accepted: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pending = PendingWrites()
        # Uncommitted rows, by source, merged into store reads: every row applied since the store's
        # read view was last refreshed (one batch, or several while commits run behind; see
        # `take_writes` and `settle`). Store reads return the same view until then, so caching them
        # for that long is exact.
        self._batch_edges: dict[tuple[str, str], dict[str, ContactEdge]] = defaultdict(dict)
        self._batch_requests: dict[tuple[str, str], dict[tuple[str, str], RequestRecord]] = defaultdict(dict)
        self._batch_answers: dict[tuple[str, str, str, str], tuple[str, datetime]] = {}
        # Store reads are cached until `settle`: the store's read view does not change before then.
        # Edge reads remember which targets they checked at any age (see `contacts_started`).
        self._edge_cache: dict[tuple[str, str], tuple[datetime, list[ContactEdge], set[str]]] = {}
        self._request_cache: dict[tuple[str, str], tuple[datetime, list[RequestRecord]]] = {}
        self._accepted_cache: dict[tuple[str, str], set[str]] = {}
        # Bounded, lazily loaded view state: one entry per recently active viewer / community hour.
        self._viewers: dict[tuple[str, str], _ViewerStats] = {}
        self._community_views: dict[str, dict[int, list[int]]] = {}
        self._view_sweep_hour: dict[str, int] = {}
        self._rankings: dict[tuple[str, str], _Ranking] = {}
        #: Detector memory (groomguard.memory), committed with each batch; the rankings persist through it too.
        self.memory_book = MemoryBook(self.reader)  # type: ignore[arg-type]
        # Accounts per community (hub rule), counted once from memory and kept up to date by _touch.
        self._sizes: dict[str, int] | None = None
        self._degree_cache: dict[tuple[str, str], int] = {}
        # Uncommitted group messages by (community, message_id), merged into addressing reads.
        self._batch_turns: dict[tuple[str, str], tuple[str, Turn]] = {}
        # The same turns by (community, conversation), kept sorted by (at, message_id): recent_turns
        # reads one room's newest turns, not the whole overlay.
        self._batch_rooms: dict[tuple[str, str], list[tuple[datetime, str, Turn]]] = {}
        # Uncommitted view counts, indexed for the two cold reads that merge them: per viewer
        # ((community, viewer) -> hour -> [to minors, total]) and per community (hour -> counts).
        self._batch_viewer_views: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._batch_community_views: dict[str, dict[int, list[int]]] = {}
        self._batch_view_authors: dict[tuple[str, str, int], set[str]] = {}
        # Committed turns read per room in this batch, with the earliest `since` asked (one query per room),
        # and when each of their ids was sent (an uncommitted turn repeating one is left out).
        self._stored_turns: dict[tuple[str, str], tuple[datetime, Sequence[Turn], dict[str, datetime]]] = {}
        # Group messages deleted since the store's read view last moved, by community: their committed
        # turns are left out of reads until then (the store drops them with the batch).
        self._batch_deleted: dict[str, set[str]] = {}

    async def restore(self) -> None:
        """Reload what must be in memory at start: the community rankings, exactly as last committed."""
        for row in await self.memory_book.rows(RANK_MEMORY):
            if row.value is None:
                continue
            ranking = self._rankings.setdefault((row.community, row.detector[len(RANK_MEMORY) :]), _Ranking())
            data = json.loads(row.value)
            if row.key == "":
                ranking.cached = tuple(data[0]) if data[0] is not None else None  # type: ignore[assignment]
                ranking.updates = int(data[1])
            else:
                ranking.values[row.key] = (data[0], datetime.fromisoformat(data[1]))

    def memory(self, detector: str) -> DetectorMemory:
        """The persistent memory of one detector (see groomguard.detectors.base.DetectorMemory)."""
        return self.memory_book.view(detector)

    # -- reads (DetectorState) ------------------------------------------------------------

    async def account(self, community: str, account: str) -> Account:
        return self.accounts.get((community, account)) or Account(account)

    async def contacts_started(self, community: str, source: str, since: datetime) -> Sequence[ContactEdge]:
        """First contacts `source` started since `since`: committed ones plus this batch's new pairs."""
        key = (community, source)
        batch = self._batch_edges.get(key, {})
        cached = self._edge_cache.get(key)
        if cached is None or cached[0] > since:
            rows = await self.reader.contacts_from(community, source, since, sorted(batch))
            cached = (since, rows, set(batch))
            self._edge_cache[key] = cached
        elif unchecked := [t for t in batch if t not in cached[2]]:
            # Pairs first seen after the cached read: whether the store knows them (at any age)
            # decides if they are first contacts, so ask for them too.
            known = {edge.target for edge in cached[1]}
            more = await self.reader.contacts_from(community, source, _FAR_FUTURE, sorted(unchecked))
            cached[1].extend(edge for edge in more if edge.target not in known)
            cached[2].update(unchecked)
        stored = {edge.target: edge for edge in cached[1]}
        out = [edge for edge in cached[1] if edge.at >= since]
        # A batch edge is a first contact only if the store has never seen the pair.
        out.extend(edge for target, edge in batch.items() if target not in stored and edge.at >= since)
        out.sort(key=lambda e: e.at)
        return out

    async def first_contact(self, community: str, source: str, target: str) -> ContactEdge | None:
        """The first contact `source` ever started with `target`, if any (store, then this batch)."""
        cached = self._edge_cache.get((community, source))
        if cached is not None:
            for edge in cached[1]:
                if edge.target == target:
                    return edge
        rows = await self.reader.contacts_from(community, source, _FAR_FUTURE, [target])
        if rows:
            return rows[0]
        return self._batch_edges.get((community, source), {}).get(target)

    async def accepted_contacts(self, community: str, account: str) -> frozenset[str]:
        key = (community, account)
        stored = self._accepted_cache.get(key)
        if stored is None:
            stored = self._accepted_cache[key] = set(await self._accepted_reader(community, account))
        return frozenset(stored | self._pending_accepted.get(key, set()))

    async def accepted_degree(self, community: str, account: str) -> int:
        """How many accounts `account` has accepted contact with (both directions count once)."""
        key = (community, account)
        stored = self._degree_cache.get(key)
        if stored is None:
            stored = self._degree_cache[key] = await self.reader.accepted_degree(community, account)
        # Pairs accepted in this batch may repeat stored ones; an overcount of a few only matters at
        # the hub boundary, where a few contacts either way make no difference.
        return stored + len(self._pending_accepted.get(key, ()))

    def community_size(self, community: str) -> int:
        """Accounts known in the community (the denominator of the hub share)."""
        if self._sizes is None:
            sizes: dict[str, int] = defaultdict(int)
            for c, _account in self.accounts:
                sizes[c] += 1
            self._sizes = dict(sizes)
        return self._sizes.get(community, 0)

    async def message_author(self, community: str, message_id: str) -> str | None:
        """Who wrote a group message, from this batch or the store (kept for the message retention)."""
        batch = self._batch_turns.get((community, message_id))
        if batch is not None:
            return batch[1].author
        if message_id in self._batch_deleted.get(community, ()):
            return None
        return await self.reader.message_author(community, message_id)

    async def recent_turns(self, community: str, conversation: str, since: datetime) -> Sequence[Turn]:
        """The latest group messages in `conversation` since `since`, oldest first (at most TURNS_READ)."""
        newest = list(await self.turns_newest_first(community, conversation, since))
        newest.reverse()
        return newest

    async def turns_newest_first(self, community: str, conversation: str, since: datetime) -> Iterator[Turn]:
        """`recent_turns`, newest first and lazily: a reader that stops early (turn-taking that meets a third
        speaker) builds nothing. Committed turns are read once per room until `settle`."""
        key = (community, conversation)
        cached = self._stored_turns.get(key)
        if cached is None or cached[0] > since:
            turns = await self.reader.recent_turns(community, conversation, since, TURNS_READ)
            cached = (since, turns, {t.message_id: t.at for t in turns})
            self._stored_turns[key] = cached
        stored, stored_at = cached[1], cached[2]
        gone = self._batch_deleted.get(community)
        if gone and not gone.isdisjoint(stored_at):
            stored = [t for t in stored if t.message_id not in gone]
            stored_at = {m: at for m, at in stored_at.items() if m not in gone}
        return _newest_first(stored, stored_at, self._batch_rooms.get(key, ()), since)

    async def requests_sent(self, community: str, source: str, since: datetime) -> Sequence[RequestRecord]:
        """Answerable requests `source` sent since `since`, with answers up to this event applied."""
        key = (community, source)
        cached = self._request_cache.get(key)
        if cached is None or cached[0] > since:
            cached = (since, await self.reader.requests_from(community, source, since))
            self._request_cache[key] = cached
        merged = {(r.target, r.request_id): r for r in cached[1] if r.requested_at >= since}
        for rk, record in self._batch_requests.get(key, {}).items():
            if record.requested_at >= since:
                merged.setdefault(rk, record)
        out = []
        for (target, request_id), record in merged.items():
            answer = self._batch_answers.get((community, source, target, request_id))
            if answer is not None and record.status == "pending":
                record = replace(record, status=answer[0], answered_at=answer[1])
            out.append(record)
        out.sort(key=lambda r: r.requested_at)
        return out

    async def viewer_hour(self, community: str, viewer: str, at: datetime, alpha: float) -> ViewerHour:
        """The viewer's views this hour against their own baseline of earlier hours (EWMA)."""
        stats = await self._viewer(community, viewer, hour_of(at), alpha)
        std = math.sqrt(max(0.0, stats.var))
        return ViewerHour(
            stats.hour,
            stats.to_minors,
            stats.total,
            len(stats.authors),
            stats.mean,
            std,
            stats.hours,
            frozenset(stats.authors),
        )

    async def community_views(self, community: str, at: datetime, hours: int) -> ViewShare:
        """Views across the community over the trailing `hours`, and how many went to minors."""
        buckets = await self._community(community, hour_of(at))
        start = hour_of(at) - hours
        to_minors = total = 0
        for hour, (tm, tot) in buckets.items():
            if hour > start:
                to_minors += tm
                total += tot
        return ViewShare(to_minors, total)

    def record_rank(self, community: str, metric: str, account: str, value: float, at: datetime) -> None:
        """Remember an account's latest value of a metric so others can be ranked against it."""
        ranking = self._rankings.setdefault((community, metric), _Ranking())
        name = RANK_MEMORY + metric
        if value > 0:
            ranking.values[account] = (value, at)
            self.memory_book.put(name, community, account, [value, at.isoformat()], (account,))
        elif ranking.values.pop(account, None) is not None:
            self.memory_book.delete(name, community, account)
        ranking.updates += 1
        self._save_ranking(community, metric, ranking)

    def _save_ranking(self, community: str, metric: str, ranking: _Ranking) -> None:
        # The cache and update count decide when the quantile is recomputed, so they persist too:
        # a restart must reuse the same threshold the uninterrupted run would have used.
        self.memory_book.put(RANK_MEMORY + metric, community, "", [ranking.cached, ranking.updates], ())

    def rank_threshold(
        self, community: str, metric: str, at: datetime, window: timedelta, quantile: float, min_population: int
    ) -> float | None:
        """The metric's `quantile` over accounts active in `window`, or None while too few are known.

        Recomputed once an hour of event time or after ~5% of accounts changed, so it costs little per event.
        """
        ranking = self._rankings.get((community, metric))
        if ranking is None:
            return None
        hour = hour_of(at)
        if ranking.cached is None or ranking.cached[0] != hour or ranking.updates >= max(20, len(ranking.values) // 20):
            horizon = at - window
            for account in [a for a, (_, seen) in ranking.values.items() if seen < horizon]:
                del ranking.values[account]
                self.memory_book.delete(RANK_MEMORY + metric, community, account)
            values = sorted(v for v, _ in ranking.values.values())
            threshold = values[min(len(values) - 1, int(quantile * len(values)))] if values else 0.0
            ranking.cached = (hour, threshold, len(values))
            ranking.updates = 0
            self._save_ranking(community, metric, ranking)
        _, threshold, population = ranking.cached
        return threshold if population >= min_population else None

    def infer_minor(self, community: str, account: str, age: int, at: datetime) -> bool:
        """Mark an account a likely minor from what it said; only tightens (see `declare_age`)."""
        return self.declare_age(community, account, AgeBand.MINOR, age, AgeSource.TEXT, at)

    async def _viewer(self, community: str, viewer: str, hour: int, alpha: float) -> _ViewerStats:
        key = (community, viewer)
        stats = self._viewers.get(key)
        if stats is None:
            # Cold viewer: rebuild the baseline from committed buckets plus this batch's, so a restart
            # in the middle of a window keeps the counts.
            rows = {
                h: [tm, tot]
                for h, tm, tot in await self.reader.viewer_buckets(community, viewer, hour - VIEW_HISTORY_HOURS)
            }
            for h, (tm, tot) in self._batch_viewer_views.get(key, {}).items():
                row = rows.setdefault(h, [0, 0])
                row[0] += tm
                row[1] += tot
            ordered = sorted(rows)
            stats = _ViewerStats(hour=ordered[0] if ordered else hour, alpha=alpha)
            for h in ordered:
                stats.advance(h)
                stats.to_minors += rows[h][0]
                stats.total += rows[h][1]
            stats.advance(hour)
            # The distinct minors of the hour the rebuilt stats stand in, which is the newest bucket's
            # hour, not the event's, when a late view (an earlier hour) triggered the rebuild: its views
            # are in to_minors, so its authors must be too, or they are lost until the next restart.
            if rows.get(stats.hour, [0])[0]:
                stats.authors = await self.reader.viewer_minor_authors(community, viewer, stats.hour)
                stats.authors |= self._batch_view_authors.get((community, viewer, stats.hour), set())
            self._viewers[key] = stats
        stats.advance(hour)
        return stats

    async def _community(self, community: str, hour: int) -> dict[int, list[int]]:
        buckets = self._community_views.get(community)
        if buckets is None:
            rows = await self.reader.community_view_buckets(community, hour - VIEW_HISTORY_HOURS)
            buckets = {h: [tm, tot] for h, tm, tot in rows}
            for h, (tm, tot) in self._batch_community_views.get(community, {}).items():
                row = buckets.setdefault(h, [0, 0])
                row[0] += tm
                row[1] += tot
            self._community_views[community] = buckets
        return buckets

    # -- writes ---------------------------------------------------------------------------

    def _touch(self, community: str, account: str, at: datetime) -> Account:
        key = (community, account)
        acc = self.accounts.get(key)
        if acc is None:
            acc = Account(account, first_seen=at)
            self.accounts[key] = acc
            self.pending.accounts[key] = acc
            if self._sizes is not None:
                self._sizes[community] = self._sizes.get(community, 0) + 1
        return acc

    def _delete_message(self, community: str, message_id: str) -> None:
        """A message is gone: its text and turn are deleted with the batch, and addressing stops seeing it now."""
        key = (community, message_id)
        pending = self.pending
        pending.messages.pop(key, None)
        pending.edited_messages.pop(key, None)
        pending.turns.pop(key, None)
        pending.deleted_messages[key] = None
        batch = self._batch_turns.pop(key, None)
        if batch is not None:
            room = self._batch_rooms.get((community, batch[0]), [])
            room[:] = [entry for entry in room if entry[1] != message_id]
        self._batch_deleted.setdefault(community, set()).add(message_id)

    def _set_account(self, community: str, acc: Account) -> None:
        self.accounts[(community, acc.account)] = acc
        self.pending.accounts[(community, acc.account)] = acc

    def declare_age(
        self, community: str, account: str, band: AgeBand, age: int | None, source: AgeSource, at: datetime
    ) -> bool:
        """Apply an age declaration if its source is at least as strong; only a moderator lifts a minor band.

        Roles, rooms, webhooks and the account itself may only tighten: a later "18+" role or an adult
        room must not turn a known child into an adult and silence every detector. Text inference
        tightens only an unknown age (it is the noisiest source).
        """
        acc = self._touch(community, account, at)
        current = SOURCE_RANK.get(AgeSource(acc.band_source), -1) if acc.band_source else -1
        if source is AgeSource.TEXT and (band is not AgeBand.MINOR or acc.band is not AgeBand.UNKNOWN):
            return False
        if acc.band is AgeBand.MINOR and band is not AgeBand.MINOR and source is not AgeSource.MODERATOR:
            return False
        tightens = band is AgeBand.MINOR and acc.band is not AgeBand.MINOR and source is not AgeSource.TEXT
        if SOURCE_RANK[source] < current and not (tightens and acc.band_source != AgeSource.MODERATOR.value):
            return False
        self._set_account(community, replace(acc, band=band, age=age, band_source=source.value))
        return True

    def apply(self, event: BaseEvent) -> None:
        """Fold one event into memory and queue its rows; called before detectors see the event."""
        # One lookup by type, not a `match` that tests the classes one by one (every event comes here).
        fold = _FOLDS.get(type(event))
        if fold is None:
            fold = _FOLDS[type(event)] = _fold_for(type(event))
        fold(self, event)

    def _fold_joined(self, event: MemberJoined) -> None:
        c, at = event.community, event.at
        acc = self._touch(c, event.account, at)
        self._set_account(
            c,
            replace(acc, joined_at=acc.joined_at or at, created_at=event.account_created_at or acc.created_at),
        )

    def _fold_request(self, event: ContactRequested) -> None:
        c, at = event.community, event.at
        self._touch(c, event.source, at)
        self._touch(c, event.target, at)
        self._record_contact(event)

    def _fold_answer(self, event: ContactAnswered) -> None:
        c = event.community
        stamp = event.at_iso  # formatted once per event, and only where a row needs it
        self._touch(c, event.target, event.at)
        request_id = event.request_id or f"{event.source}>{event.target}"
        self.pending.answers.append((event.answer.value, stamp, c, event.source, event.target, request_id))
        self._batch_answers.setdefault((c, event.source, event.target, request_id), (event.answer.value, event.at))
        if event.answer is Answer.ACCEPTED:
            self._accept(c, event.source, event.target, stamp)

    def _fold_message(self, event: MessageSent) -> None:
        c, at = event.community, event.at
        stamp = event.at_iso
        self._touch(c, event.author, at)
        # get-then-insert, not setdefault: a default list built for every message is thrown away nearly always.
        conversations = self.pending.conversations
        conv = conversations.get((c, event.conversation))
        if conv is None:
            conversations[(c, event.conversation)] = [event.private, stamp, stamp, 1]
        else:
            conv[2] = stamp
            conv[3] += 1
        key = (c, event.message_id)
        if self.keep_text and event.text and self._text_worth_keeping(c, event):
            # Written after any edit of an earlier message with this id, so drop those edits.
            self.pending.edited_messages.pop(key, None)
            self.pending.messages[key] = (c, event.message_id, event.conversation, event.author, stamp, event.text)
        if not event.private:
            # Who said what when in group rooms, so groomguard.addressing can resolve replies and turns.
            self.pending.turns.setdefault(key, (c, event.message_id, event.conversation, event.author, stamp))
            turn = Turn(event.author, at, event.message_id)
            self._batch_turns[key] = (event.conversation, turn)
            room = self._batch_rooms.get((c, event.conversation))
            if room is None:
                room = self._batch_rooms[(c, event.conversation)] = []
            entry = (at, event.message_id, turn)
            # Ordered by (time, id) only: a Turn does not compare, and the same message id can
            # come twice at the same time (two events for one message).
            if room and (at < (last := room[-1])[0] or (at == last[0] and event.message_id < last[1])):
                insort(room, entry, key=_room_order)  # a late message; in order ones are appended
            else:
                room.append(entry)

    def _fold_edit(self, event: MessageEdited) -> None:
        if self.keep_text:
            # Only messages already kept are updated: an edit never adds text we chose not to store.
            key = (event.community, event.message_id)
            row = self.pending.messages.get(key)
            if row is not None:
                self.pending.messages[key] = (*row[:5], event.text)
            else:
                self.pending.edited_messages[key] = event.text

    def _fold_deletion(self, event: MessageDeleted) -> None:
        self._delete_message(event.community, event.message_id)

    def _fold_view(self, event: ContentViewed) -> None:
        self._touch(event.community, event.viewer, event.at)
        self._count_view(event.community, event.viewer, event.author, event.at, event.count)

    def _fold_reaction(self, event: ReactionAdded) -> None:
        self._touch(event.community, event.account, event.at)

    def _fold_age(self, event: AgeDeclared) -> None:
        self.declare_age(event.community, event.account, event.band, event.age, event.source, event.at)

    def _fold_standing(self, event: StandingDeclared) -> None:
        c = event.community
        acc = self._touch(c, event.account, event.at)
        standings = acc.standings | {event.standing.value} if event.held else acc.standings - {event.standing.value}
        if standings != acc.standings:
            self._set_account(c, replace(acc, standings=standings))
        self.pending.standings.append((c, event.account, event.standing.value, int(event.held), event.at_iso))

    def _fold_region(self, event: RegionDeclared) -> None:
        c = event.community
        acc = self._touch(c, event.account, event.at)
        if event.region not in acc.regions:
            self._set_account(c, replace(acc, regions=acc.regions | {event.region}))
            self.pending.regions.append((c, event.account, event.region))

    def _accept(self, community: str, source: str, target: str, stamp: str) -> None:
        """Queue an accepted contact, both ways, and count it in reads at once."""
        self.pending.accepted.append((community, source, target, stamp))
        self.pending.accepted.append((community, target, source, stamp))
        self._pending_accepted[(community, source)].add(target)
        self._pending_accepted[(community, target)].add(source)

    def hold_answer(self, event: ContactAnswered) -> None:
        """Apply an answer whose request is not stored yet, except to that request (groomguard.ordering): its
        accepted contact counts now; `apply` settles the request once it has arrived."""
        self._touch(event.community, event.target, event.at)
        if event.answer is Answer.ACCEPTED:
            self._accept(event.community, event.source, event.target, event.at_iso)

    def _text_worth_keeping(self, community: str, event: MessageSent) -> bool:
        """Store the minimum: keep text only of private messages and messages addressed to a minor."""
        if event.private:
            return True
        for recipient in event.recipients:
            acc = self.accounts.get((community, recipient))
            if acc is not None and acc.is_minor:
                return True
        return False

    def _record_contact(self, event: ContactRequested) -> None:
        c = event.community
        if event.kind in REQUEST_KINDS:
            request_id = event.request_id or f"{event.source}>{event.target}"
            self.pending.requests.append(
                (c, event.source, event.target, request_id, event.kind.value, event.at_iso, event.key)
            )
            self._batch_requests[(c, event.source)].setdefault(
                (event.target, request_id),
                RequestRecord(event.target, request_id, event.kind.value, event.at, "pending", None, event.key),
            )
        batch = self._batch_edges[(c, event.source)]
        if event.target in batch:
            return
        # The store keeps only the first contact per pair (INSERT OR IGNORE), so repeats are harmless.
        batch[event.target] = ContactEdge(event.source, event.target, event.kind.value, event.at, event.key)
        self.pending.contacts.append((c, event.source, event.target, event.kind.value, event.at_iso, event.key))

    def _count_view(self, community: str, viewer: str, author: str, at: datetime, count: int) -> None:
        author_acc = self.accounts.get((community, author))
        to_minor = author_acc is not None and author_acc.is_minor
        hour = hour_of(at)
        # get-then-insert, not setdefault: three default lists built for every view were nearly always dropped.
        views = self.pending.views
        bucket = views.get((community, viewer, hour))
        if bucket is None:
            bucket = views[(community, viewer, hour)] = [0, 0]
        hours = self._batch_viewer_views.get((community, viewer))
        if hours is None:
            hours = self._batch_viewer_views[(community, viewer)] = {}
        mine = hours.get(hour)
        if mine is None:
            mine = hours[hour] = [0, 0]
        hours = self._batch_community_views.get(community)
        if hours is None:
            hours = self._batch_community_views[community] = {}
        theirs = hours.get(hour)
        if theirs is None:
            theirs = hours[hour] = [0, 0]
        if to_minor:
            bucket[0] += count
            mine[0] += count
            theirs[0] += count
            self.pending.view_authors.add((community, viewer, hour, author))
            self._batch_view_authors.setdefault((community, viewer, hour), set()).add(author)
        bucket[1] += count
        mine[1] += count
        theirs[1] += count
        stats = self._viewers.get((community, viewer))
        if stats is not None and hour < stats.hour:
            # A late view for an earlier hour: the running baseline cannot fold it in after the fact.
            # Drop it, so the next read rebuilds from the buckets exactly as a restart would.
            del self._viewers[(community, viewer)]
        elif stats is not None:
            stats.advance(hour)
            if stats.hour == hour:
                stats.total += count
                if to_minor:
                    stats.to_minors += count
                    stats.authors.add(author)
        buckets = self._community_views.get(community)
        if buckets is not None:
            row = buckets.setdefault(hour, [0, 0])
            row[0] += count if to_minor else 0
            row[1] += count
        # Viewers idle for the whole history window are rare; a daily sweep keeps memory bounded
        # without walking every viewer each hour (checked here: every view comes this way).
        last = self._view_sweep_hour.get(community)
        if last is None or hour >= last + VIEW_SWEEP_EVERY_HOURS:
            self._sweep_views(community, hour)

    def _sweep_views(self, community: str, hour: int) -> None:
        """Drop viewers and community buckets older than the view history (`_count_view` calls it once a day
        of event time)."""
        self._view_sweep_hour[community] = hour
        horizon = hour - VIEW_HISTORY_HOURS
        for key in [k for k, v in self._viewers.items() if k[0] == community and v.hour < horizon]:
            del self._viewers[key]
        buckets = self._community_views.get(community)
        if buckets:
            for h in [h for h in buckets if h < horizon]:
                del buckets[h]

    def take_pending(self) -> PendingWrites:
        """Hand the queued rows to a store that commits them now, and forget what it then holds."""
        pending = self.take_writes()
        self.settle()
        return pending

    def take_writes(self) -> PendingWrites:
        """Hand the queued rows to the store, keeping them as the overlay merged into store reads.

        For a store whose commit runs behind processing: its read view stays where it was until the
        commit lands, so the rows stay merged in until `settle` says the store holds them.
        """
        pending, self.pending = self.pending, PendingWrites()
        return pending

    def settle(self) -> None:
        """Every row handed over is committed and the store's read view shows it: drop overlay and caches."""
        self.memory_book.settle()
        self._pending_accepted.clear()
        self._batch_edges.clear()
        self._batch_requests.clear()
        self._batch_answers.clear()
        self._edge_cache.clear()
        self._request_cache.clear()
        self._accepted_cache.clear()
        self._degree_cache.clear()
        self._batch_turns.clear()
        self._batch_deleted.clear()
        self._batch_rooms.clear()
        self._stored_turns.clear()
        self._batch_viewer_views.clear()
        self._batch_community_views.clear()
        self._batch_view_authors.clear()

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop everything held in memory about one account."""

        def scoped(c: str) -> bool:
            return community is None or c == community

        for key in [k for k in self.accounts if k[1] == account and scoped(k[0])]:
            del self.accounts[key]
        self._sizes = None
        for key in [k for k in self._viewers if k[1] == account and scoped(k[0])]:
            del self._viewers[key]
        for (c, _viewer), stats in self._viewers.items():
            if scoped(c):
                stats.authors.discard(account)
        for (c, _metric), ranking in self._rankings.items():
            if scoped(c):
                ranking.values.pop(account, None)
        self.memory_book.forget(account, community)
        # Community view totals are aggregates without ids; they are rebuilt from the store on next read.
        self._community_views.clear()


def _ignore(_state: CommunityState, _event: BaseEvent) -> None:
    """Events the state keeps nothing of (a member leaving, a moderator's decision: the cases hold those)."""


#: How `CommunityState.apply` folds each event type in.
_FOLDS: dict[type, Callable[[CommunityState, Any], None]] = {
    MemberJoined: CommunityState._fold_joined,
    ContactRequested: CommunityState._fold_request,
    ContactAnswered: CommunityState._fold_answer,
    MessageSent: CommunityState._fold_message,
    MessageEdited: CommunityState._fold_edit,
    MessageDeleted: CommunityState._fold_deletion,
    ContentViewed: CommunityState._fold_view,
    ReactionAdded: CommunityState._fold_reaction,
    AgeDeclared: CommunityState._fold_age,
    StandingDeclared: CommunityState._fold_standing,
    RegionDeclared: CommunityState._fold_region,
}


def _fold_for(kind: type) -> Callable[[CommunityState, Any], None]:
    """A subclass of an event type folds in as its base does; any other type is ignored."""
    for base in kind.__mro__[1:]:
        if base in _FOLDS:
            return _FOLDS[base]
    return _ignore
