"""rejections: an account whose requests to minors are mostly rejected or left unanswered."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from groomguard.detectors.base import DetectorState, RampSettings, StoreBackedDetector
from groomguard.detectors.fan_out import span_text
from groomguard.events import REQUEST_KINDS, Answer, BaseEvent, ContactAnswered, ContactKind, ContactRequested
from groomguard.findings import Evidence, Finding
from groomguard.memory import MemoryRow
from groomguard.records import RequestRecord
from pydantic import Field, ValidationError

log = logging.getLogger(__name__)

#: Request statuses that mean the child said no (or never said yes).
REFUSED = frozenset({"rejected", "expired"})
#: Statuses that are no answer from the child at all (the inviter withdrew it): counted neither way.
WITHDRAWN = frozenset({"withdrawn"})
#: Detector-memory name of the requests to minors still waiting for an answer (read by `due_expiries`).
PENDING_REQUESTS = "rejections.pending"


class RejectionsSettings(RampSettings):
    """Thresholds for rejections; each says what it trades off."""

    ramp_counts = ("min_refused", "saturate_refused")

    window_hours: float = Field(
        24 * 28,
        gt=0,
        le=24 * 30,
        description="rolling window of requests; longer catches slow senders, but old refusals weigh on benign adults",
    )
    expire_after_hours: float = Field(
        72,
        gt=0,
        le=24 * 30,
        description="a request to a minor still unanswered after this counts as refused; shorter = earlier, but slow repliers count",
    )
    min_refused: int = Field(
        4,
        ge=2,
        le=1000,
        description="refused requests to minors before it fires, so one or two rejections never alert; lower = earlier, noisier",
    )
    min_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="share of settled requests to minors that were refused; lower catches groomers with some acceptances, flags more adults",
    )
    min_minor_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the account's requests that went to minors; keeps adults who friend everyone quiet, "
        "but a groomer who also friends many adults slips under it",
    )
    saturate_refused: int = Field(12, ge=3, le=5000, description="refused requests at which the score reaches its top")
    floor_score: float = Field(
        0.45,
        gt=0,
        le=1,
        description="score at the floor; below cases.alert_threshold it alerts only with another signal or more refusals",
    )
    top_score: float = Field(0.9, gt=0, le=1, description="score at saturate_refused")
    reorder_window_hours: float = Field(
        24,
        gt=0,
        le=24 * 7,
        description="an answer stored before its request (two producers, webhook retries) waits this long on the "
        "community's clock for it; longer tolerates later requests, but keeps more answers whose request never comes",
    )


def settle(record: RequestRecord, now: datetime, expire_after: timedelta) -> str:
    """The request's status as of `now`: a pending request past the expiry counts as expired."""
    if record.status == "pending" and now - record.requested_at >= expire_after:
        return "expired"
    return record.status


def _pending_key(source: str, target: str, request_id: str | None) -> str:
    """The memory key of one request: the store's (source, target, request id), as `state` defaults the id."""
    return f"{source}|{target}|{request_id or f'{source}>{target}'}"


def due_expiries(rows: Iterable[MemoryRow], now: datetime, settings: RejectionsSettings) -> list[ContactAnswered]:
    """The requests to minors still unanswered `expire_after_hours` after they were sent, by `now`, as
    `expired` answers dated at their expiry: what a platform that never reports expiry cannot send.

    The engine ingests them on a clock (`Engine.expire_requests`), so an account whose requests go
    unanswered is found when they expire, not only when it sends the next one. A row that cannot be
    read is logged and skipped.
    """
    expire = timedelta(hours=settings.expire_after_hours)
    out = []
    for row in rows:
        if row.value is None:
            continue
        try:
            pending = json.loads(row.value)
            due = datetime.fromisoformat(pending["at"]) + expire
            if due > now:
                continue
            out.append(
                ContactAnswered(
                    event_id=f"{pending['event_id']}#expired",
                    platform=pending["platform"],
                    community=row.community,
                    at=due,
                    source=pending["source"],
                    target=pending["target"],
                    answer=Answer.EXPIRED,
                    request_id=pending["request_id"],
                )
            )
        except (KeyError, TypeError, ValueError, ValidationError) as error:
            log.warning("skipped unreadable pending request %s in %s: %s", row.key, row.community, error)
    return out


class RejectionsDetector(StoreBackedDetector[RejectionsSettings]):
    """Counts requests to minors that were rejected or expired unanswered, with a count floor and a ratio."""

    name: ClassVar[str] = "rejections"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (
        ContactRequested,
        ContactAnswered,
    )

    @staticmethod
    def _await_answer(event: ContactRequested, state: DetectorState, expire: timedelta, moderated: bool) -> None:
        """Remember a request to a minor until it is answered, so it can expire on time (`due_expiries`)."""
        if event.kind not in REQUEST_KINDS or (moderated and event.kind is ContactKind.INVITE):
            return  # not answerable, or a moderator's or creator's invitation (the layout): never counted
        pending = {
            "platform": event.platform,
            "event_id": event.event_id,
            "source": event.source,
            "target": event.target,
            "request_id": event.request_id,
            "at": event.at.isoformat(),
        }
        state.memory(PENDING_REQUESTS).put(
            event.community,
            _pending_key(event.source, event.target, event.request_id),
            pending,
            accounts=(event.source, event.target),
            expires_at=event.at + expire,
        )

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if isinstance(event, ContactAnswered):
            # Answered, expired or withdrawn: it no longer waits for the expiry (`due_expiries`).
            pending_key = _pending_key(event.source, event.target, event.request_id)
            state.memory(PENDING_REQUESTS).delete(event.community, pending_key)
            if event.answer.value not in REFUSED:
                return ()
        elif not isinstance(event, ContactRequested):
            return ()
        c, s = event.community, self.settings
        if event.source == event.target:
            return ()
        source = await state.account(c, event.source)
        target = await state.account(c, event.target)
        if not source.may_be_adult or not target.is_minor:
            return ()
        expire = timedelta(hours=s.expire_after_hours)
        if isinstance(event, ContactRequested):
            self._await_answer(event, state, expire, moderated=bool(source.standings))
        settled: list[tuple[RequestRecord, str]] = []
        sent = await state.requests_sent(c, event.source, event.at - timedelta(hours=s.window_hours))
        to_minors = 0
        for record in sent:
            if record.target == event.source or not (await state.account(c, record.target)).is_minor:
                continue
            if source.standings and record.kind == ContactKind.INVITE.value:
                # A moderator's or creator's room invitations are the layout, not personal requests.
                continue
            to_minors += 1
            status = settle(record, event.at, expire)
            if status in WITHDRAWN:
                continue
            if status != "pending":
                settled.append((record, status))
        refused = [(r, st) for r, st in settled if st in REFUSED]
        if len(refused) < s.min_refused or len(refused) / len(settled) < s.min_ratio:
            return ()
        if to_minors / len(sent) < s.min_minor_share:
            return ()
        # A new request only re-reports when it is what reveals requests left unanswered past the expiry.
        if isinstance(event, ContactRequested) and not any(r.status == "pending" for r, _ in refused):
            return ()
        score = s.score(len(refused))
        rejected = sum(1 for _, st in refused if st == "rejected")
        expired = len(refused) - rejected
        minors = len({r.target for r, _ in settled})
        reason = (
            f"{len(refused)} of {len(settled)} requests to {minors} under-18 accounts in {span_text(s.window_hours)} "
            f"were refused: {rejected} rejected, {expired} never answered"
        )
        evidence = tuple(
            Evidence(
                kind="request",
                ref=r.request_id,
                label=f"{r.kind} request {'rejected' if st == 'rejected' else 'never answered'}",
                at=r.requested_at,
                child=r.target,
            )
            for r, st in sorted(refused, key=lambda x: x[0].requested_at)[-25:]
        )
        return (
            Finding(
                detector=self.name,
                platform=event.platform,
                community=c,
                suspect=event.source,
                score=round(score, 4),
                reason=reason,
                evidence=evidence,
                at=event.at,
                event_key=event.key,
                child=event.target,
                children=tuple(dict.fromkeys(r.target for r, _ in settled)),
            ),
        )
