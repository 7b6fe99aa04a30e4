"""Contact answers stored before their requests: held in detector memory until the request arrives.

Two producers feeding one community (two engines' webhooks, two webhook senders on SQLite, a platform's
retries) can store an answer before the request it answers. Applied then, the answer finds no request to
settle and is lost: the request stays pending and later expires into a "never answered" refusal, even when
the child accepted. So the engine asks `AnswerHold.early` about every answer; one whose request is not
stored is remembered (detector memory: committed with its batch, so it survives a restart or kill -9) for
`detectors.rejections.reorder_window_hours` of its community's clock, and `release` hands it back right
after its request, where the engine applies it as if it had arrived in order. Only the request's status and
the rejections count wait: the engine applies the answer's accepted contact at once
(`CommunityState.hold_answer`), because an answer whose request never comes (sent before GroomGuard was
installed) still says the two know each other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from groomguard.events import AgeBand, ContactAnswered, ContactRequested, EventError, parse_event
from groomguard.memory import MemoryBook
from groomguard.records import Account, RequestRecord

log = logging.getLogger(__name__)

#: Detector-memory name of the answers held for their requests.
HELD_ANSWERS = "engine.held_answers"


class RequestReader(Protocol):
    """What `early` reads of CommunityState: known accounts, and stored requests merged with this batch's."""

    accounts: dict[tuple[str, str], Account]

    async def requests_sent(self, community: str, source: str, since: datetime) -> Sequence[RequestRecord]: ...


def held_key(source: str, target: str, request_id: str | None) -> str:
    """The memory key of one request's answer: (source, target, request id), the id defaulted as the state does."""
    return f"{source}|{target}|{request_id or f'{source}>{target}'}"


class AnswerHold:
    """The answers waiting for their requests: rows in detector memory, indexed here by (community, key)."""

    def __init__(self, window: timedelta, lookback: timedelta) -> None:
        #: How long, on the community's clock, an answer waits for its request.
        self.window = window
        #: How far back a request is looked for (the rejections window, so the read is the detector's own, cached).
        self.lookback = lookback
        #: Answers held since start (a count for tests and logs; the rows are the state).
        self.held_total = 0
        #: (community, key) -> (expiry, the two accounts) of every held answer.
        self._held: dict[tuple[str, str], tuple[datetime, tuple[str, ...]]] = {}

    @property
    def waiting(self) -> bool:
        """Whether any answer is held (so requests need looking up at all)."""
        return bool(self._held)

    async def load(self, book: MemoryBook) -> None:
        """Rebuild the index from the committed rows (at start, and when the engine's partitions change)."""
        self._held = {}
        for row in await book.rows(HELD_ANSWERS):
            if row.value is not None and row.expires_at is not None:
                self._held[(row.community, row.key)] = (row.expires_at, row.accounts)

    async def early(self, event: ContactAnswered, requests: RequestReader, book: MemoryBook) -> bool:
        """Whether `event` answers a request not stored yet; if so it is held (written with the batch).

        Only answers from minors and accounts of unknown age are looked at: rejections counts requests to
        minors only, so the status of a request an adult answered is never read (and an account found
        to be a minor later had its earlier answers held already unless it was known as an adult).
        """
        answering = requests.accounts.get((event.community, event.target))
        if answering is not None and answering.band is AgeBand.ADULT:
            return False
        request_id = event.request_id or f"{event.source}>{event.target}"
        sent = await requests.requests_sent(event.community, event.source, event.at - self.lookback)
        if any(r.target == event.target and r.request_id == request_id for r in sent):
            return False
        key = held_key(event.source, event.target, event.request_id)
        expires = event.at + self.window
        book.put(
            HELD_ANSWERS,
            event.community,
            key,
            event.model_dump(mode="json"),
            accounts=(event.source, event.target),
            expires_at=expires,
        )
        self._held[(event.community, key)] = (expires, (event.source, event.target))
        self.held_total += 1
        log.info("held answer %s in %s until its request arrives (or %s)", event.key, event.community, expires)
        return True

    async def release(self, request: ContactRequested, now: datetime, book: MemoryBook) -> list[ContactAnswered]:
        """The held answer to `request`, if any and not expired at `now` (the community's clock); it is
        removed from memory either way."""
        ident = (request.community, held_key(request.source, request.target, request.request_id))
        entry = self._held.pop(ident, None)
        if entry is None:
            return []
        value = await book.get(HELD_ANSWERS, *ident)
        book.delete(HELD_ANSWERS, *ident)
        if entry[0] <= now:
            log.info("request %s in %s came after its held answer expired", request.key, request.community)
            return []
        try:
            answer = parse_event(value) if value is not None else None
        except EventError as error:
            log.warning("skipped an unreadable held answer %s in %s: %s", ident[1], ident[0], error)
            return []
        return [answer] if isinstance(answer, ContactAnswered) else []

    def prune(self, clocks: dict[str, datetime]) -> int:
        """Drop index entries expired on their community's clock (their rows are hidden and later purged)."""
        gone = [k for k, (expires, _) in self._held.items() if (now := clocks.get(k[0])) and expires <= now]
        for k in gone:
            del self._held[k]
        return len(gone)

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop held answers naming `account` (the store erases their rows)."""
        for k in [
            k
            for k, (_, accounts) in self._held.items()
            if account in accounts and (community is None or k[0] == community)
        ]:
            del self._held[k]
