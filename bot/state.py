"""In-memory community state the detectors read, rebuilt from the store and written back in batches."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.detectors.base import Account, ContactEdge
from bot.events import (
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
)

#: Which age sources may overwrite which: a stronger source always wins.
SOURCE_RANK = {AgeSource.TEXT: 0, AgeSource.SELF: 1, AgeSource.ROLE: 2, AgeSource.MODERATOR: 3}

AcceptedReader = Callable[[str, str], Awaitable[set[str]]]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def hour_of(at: datetime) -> int:
    return int(at.timestamp()) // 3600


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
    conversations: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    messages: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    deleted_messages: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(bool(getattr(self, name)) for name in self.__dataclass_fields__)


class CommunityState:
    """Accounts and recent contact, held in memory for speed; cold look-ups go to the store."""

    def __init__(self, accepted_reader: AcceptedReader, contact_window: timedelta, keep_text: bool = True) -> None:
        self._accepted_reader = accepted_reader
        self.contact_window = contact_window
        self.keep_text = keep_text
        self.accounts: dict[tuple[str, str], Account] = {}
        self.recent: dict[tuple[str, str], deque[ContactEdge]] = defaultdict(deque)
        self._pairs_in_window: set[tuple[str, str, str]] = set()
        self._pending_accepted: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pending = PendingWrites()

    # -- reads (DetectorState) ------------------------------------------------------------

    async def account(self, community: str, account: str) -> Account:
        return self.accounts.get((community, account)) or Account(account)

    async def contacts_started(self, community: str, source: str, since: datetime) -> Sequence[ContactEdge]:
        edges = self.recent.get((community, source))
        if not edges:
            return ()
        return [edge for edge in edges if edge.at >= since]

    async def accepted_contacts(self, community: str, account: str) -> frozenset[str]:
        stored = await self._accepted_reader(community, account)
        return frozenset(stored | self._pending_accepted.get((community, account), set()))

    # -- loading --------------------------------------------------------------------------

    def load_accounts(self, rows: Iterable[Account], community_of: Iterable[str]) -> None:
        for community, acc in zip(community_of, rows, strict=True):
            self.accounts[(community, acc.account)] = acc

    def load_contact(self, community: str, edge: ContactEdge) -> None:
        self.recent[(community, edge.source)].append(edge)
        self._pairs_in_window.add((community, edge.source, edge.target))

    # -- writes ---------------------------------------------------------------------------

    def _touch(self, community: str, account: str, at: datetime) -> Account:
        key = (community, account)
        acc = self.accounts.get(key)
        if acc is None:
            acc = Account(account, first_seen=at)
            self.accounts[key] = acc
            self.pending.accounts[key] = acc
        return acc

    def _set_account(self, community: str, acc: Account) -> None:
        self.accounts[(community, acc.account)] = acc
        self.pending.accounts[(community, acc.account)] = acc

    def declare_age(
        self, community: str, account: str, band: AgeBand, age: int | None, source: AgeSource, at: datetime
    ) -> bool:
        """Apply an age declaration if its source is at least as strong; text may only tighten."""
        acc = self._touch(community, account, at)
        current = SOURCE_RANK.get(AgeSource(acc.band_source), -1) if acc.band_source else -1
        if source is AgeSource.TEXT and (band is not AgeBand.MINOR or acc.band is not AgeBand.UNKNOWN):
            return False
        if SOURCE_RANK[source] < current:
            return False
        self._set_account(community, replace(acc, band=band, age=age, band_source=source.value))
        return True

    def apply(self, event: BaseEvent) -> None:
        """Fold one event into memory and queue its rows; called before detectors see the event."""
        c, at = event.community, event.at
        match event:
            case MemberJoined():
                acc = self._touch(c, event.account, at)
                self._set_account(
                    c,
                    replace(acc, joined_at=acc.joined_at or at, created_at=event.account_created_at or acc.created_at),
                )
            case ContactRequested():
                self._touch(c, event.source, at)
                self._touch(c, event.target, at)
                self._record_contact(event)
            case ContactAnswered():
                self._touch(c, event.target, at)
                request_id = event.request_id or f"{event.source}>{event.target}"
                self.pending.answers.append((event.answer.value, iso(at), c, event.source, event.target, request_id))
                if event.answer is Answer.ACCEPTED:
                    self.pending.accepted.append((c, event.source, event.target, iso(at) or ""))
                    self.pending.accepted.append((c, event.target, event.source, iso(at) or ""))
                    self._pending_accepted[(c, event.source)].add(event.target)
                    self._pending_accepted[(c, event.target)].add(event.source)
            case MessageSent():
                self._touch(c, event.author, at)
                conv = self.pending.conversations.setdefault(
                    (c, event.conversation), [event.private, iso(at), iso(at), 0]
                )
                conv[2] = iso(at)
                conv[3] += 1
                if self.keep_text and event.text:
                    self.pending.messages.append(
                        (c, event.message_id, event.conversation, event.author, iso(at) or "", event.text)
                    )
            case MessageEdited():
                if self.keep_text:
                    self.pending.messages.append(
                        (c, event.message_id, event.conversation, event.author, iso(at) or "", event.text)
                    )
            case MessageDeleted():
                self.pending.deleted_messages.append((c, event.message_id))
            case ContentViewed():
                self._touch(c, event.viewer, at)
                self._count_view(c, event.viewer, event.author, at, event.count)
            case ReactionAdded():
                self._touch(c, event.account, at)
            case AgeDeclared():
                self.declare_age(c, event.account, event.band, event.age, event.source, at)
            case RegionDeclared():
                acc = self._touch(c, event.account, at)
                if event.region not in acc.regions:
                    self._set_account(c, replace(acc, regions=acc.regions | {event.region}))
                    self.pending.regions.append((c, event.account, event.region))
            case _:
                pass

    def _record_contact(self, event: ContactRequested) -> None:
        c = event.community
        if event.kind in REQUEST_KINDS:
            request_id = event.request_id or f"{event.source}>{event.target}"
            self.pending.requests.append(
                (c, event.source, event.target, request_id, event.kind.value, iso(event.at) or "", event.key)
            )
        pair = (c, event.source, event.target)
        if pair in self._pairs_in_window:
            return
        edge = ContactEdge(event.source, event.target, event.kind.value, event.at, event.key)
        self._pairs_in_window.add(pair)
        self.recent[(c, event.source)].append(edge)
        self.pending.contacts.append((c, event.source, event.target, event.kind.value, iso(event.at) or "", event.key))
        self._prune(c, event.source, event.at)

    def _count_view(self, community: str, viewer: str, author: str, at: datetime, count: int) -> None:
        to_minor = self.accounts.get((community, author))
        bucket = self.pending.views.setdefault((community, viewer, hour_of(at)), [0, 0])
        if to_minor is not None and to_minor.is_minor:
            bucket[0] += count
        bucket[1] += count

    def _prune(self, community: str, source: str, now: datetime) -> None:
        edges = self.recent[(community, source)]
        horizon = now - self.contact_window
        while edges and edges[0].at < horizon:
            old = edges.popleft()
            self._pairs_in_window.discard((community, old.source, old.target))

    def take_pending(self) -> PendingWrites:
        """Hand the queued rows to the store and start a fresh buffer."""
        pending, self.pending = self.pending, PendingWrites()
        self._pending_accepted.clear()
        return pending

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop everything held in memory about one account."""
        for key in [k for k in self.accounts if k[1] == account and (community is None or k[0] == community)]:
            del self.accounts[key]
        for key in [k for k in self.recent if k[1] == account]:
            del self.recent[key]
        for key, edges in self.recent.items():
            kept = deque(e for e in edges if e.target != account)
            if len(kept) != len(edges):
                self.recent[key] = kept
        self._pairs_in_window = {p for p in self._pairs_in_window if account not in (p[1], p[2])}
