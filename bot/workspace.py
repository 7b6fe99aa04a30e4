"""The moderator workspace core: case views with one risk number, and one decision path for every surface.

Cards, `groomguard cases`, Discord's and Matrix's commands (and later the web view) read cases through
`summarise`/`detail`, so the same case shows the same "risk now" and peak everywhere: the risk decayed
to its community's clock (the latest event time processed there), never to this machine's wall clock.
Buttons, reactions, the CLI and the web decide through `decide`, which stores a `ModeratorDecision` and
lets the engine apply it: the same status change, audit row, card edit and enforcement whichever
surface a moderator used.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from groomguard.cases import ACTIVE, Case, detector_title, recommended_action, risk_band, risk_note
from groomguard.events import Decision, ModeratorDecision
from groomguard.findings import Evidence
from groomguard.port import EnginePort
from groomguard.storage import Store


class CaseSource(Protocol):
    """Where cases are read from: the store itself (the CLI) or the running engine's port (adapters)."""

    async def list_cases(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None: ...


#: Detector-memory name of each community's clock (kept by the engine, see groomguard.engine.CLOCK_MEMORY).
CLOCK_MEMORY = "engine.clock"
#: Longest note a moderator may attach to a decision (Discord's modal allows the same).
MAX_NOTE = 1000


async def community_clocks(store: Store) -> dict[str, datetime]:
    """Each community's clock as the engine last committed it (what 'risk now' is measured at)."""
    rows = await store.memory_rows(CLOCK_MEMORY)
    return {row.community: datetime.fromisoformat(json.loads(row.value)) for row in rows if row.value is not None}


def clock_for(case: Case, clocks: dict[str, datetime]) -> datetime:
    """The time a case's risk is read at: its community's clock, never earlier than its last update."""
    at = clocks.get(case.community)
    return max(at, case.updated_at) if at is not None else case.updated_at


async def case_queue(
    source: CaseSource,
    half_life_hours: float,
    clocks: dict[str, datetime],
    *,
    status: str | None = None,
    community: str | None = None,
    platform: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Case summaries, highest risk now first: the moderator's queue (CLI, Discord, Matrix, web).

    The stored risk is as of each case's last write; every case is read again at its community's
    clock, so the order and the numbers match the cards and `cases show`.
    """
    out = []
    for row in await source.list_cases(status, limit=100_000):
        if (community is not None and row["community"] != community) or (
            platform is not None and row["platform"] != platform
        ):
            continue
        found = await source.get_case(row["id"])
        if found is not None:
            out.append(summarise(found[0], clock_for(found[0], clocks), half_life_hours))
    out.sort(key=lambda r: (-float(r["risk_now"]), int(r["id"])))
    return out[:limit]


def evidence_when(item: Evidence | dict[str, Any]) -> str:
    """'12 Jan 14:03 UTC' for an evidence item, '' when it has no time."""
    at = item.at if isinstance(item, Evidence) else item.get("at")
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return f"{at.astimezone(UTC):%d %b %H:%M} UTC" if isinstance(at, datetime) else ""


def evidence_line(item: Evidence, child_label: str | None = None) -> str:
    """One evidence item in moderators' words: when · which child · what (no kinds, no raw ids)."""
    parts = [evidence_when(item)]
    if item.child:
        parts.append(child_label or item.child)
    parts.append(item.label or "(no detail recorded)")
    return " · ".join(p for p in parts if p)


def summarise(case: Case, now: datetime, half_life_hours: float) -> dict[str, Any]:
    """A JSON-ready summary of one case at `now` (`cases list --json`, case queues)."""
    risk = case.risk(now, half_life_hours)
    return {
        "id": case.id,
        "platform": case.platform,
        "community": case.community,
        "suspect": case.suspect,
        "status": case.status,
        "risk_now": round(risk, 3),
        "peak": round(max(case.peak_risk, risk), 3),
        "band": risk_band(risk),
        "recommended": recommended_action(risk, case.status, case.reasons),
        "as_of": now.isoformat(),
        "opened_at": case.opened_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "children": len(case.children),
        "signals": [detector_title(d) for d, _ in sorted(case.reasons.items(), key=lambda kv: -float(kv[1]["score"]))],
    }


def detail(
    case: Case,
    findings: list[dict[str, Any]],
    audit: list[dict[str, Any]],
    now: datetime,
    half_life_hours: float,
) -> dict[str, Any]:
    """Everything a moderator needs to judge one case, JSON-ready (`cases show --json`)."""
    out = summarise(case, now, half_life_hours)
    out["children"] = list(case.children)
    out["risk_note"] = risk_note(half_life_hours)
    out["reasons"] = [
        {"signal": detector_title(d), "detector": d, "text": r["text"], "score": round(float(r["score"]), 3)}
        for d, r in sorted(case.reasons.items(), key=lambda kv: -float(kv[1]["score"]))
    ]
    evidence = []
    for d, r in sorted(case.reasons.items(), key=lambda kv: -float(kv[1]["score"])):
        for raw in r.get("evidence", []):
            item = Evidence(**raw)
            evidence.append(
                {
                    "signal": detector_title(d),
                    "at": item.at.isoformat() if item.at else None,
                    "child": item.child,
                    "what": item.label,
                    "kind": item.kind,
                    "ref": item.ref,
                }
            )
    out["evidence"] = evidence
    out["findings"] = len(findings)
    out["history"] = [_history(entry) for entry in audit]
    return out


def _history(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry.get("detail") or "{}"
    try:
        info = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        info = {}
    row = {"at": entry["at"], "by": entry["actor"], "action": entry["action"]}
    if isinstance(info, dict) and info.get("note"):
        row["note"] = info["note"]
    return row


async def _known(engine: EnginePort, key: str) -> bool:
    return key in await engine.known_bodies([key])


async def add_note(
    engine: EnginePort,
    case_id: int,
    moderator: str,
    note: str,
    *,
    event_id: str,
    community: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Attach a moderator's note to a case's history (audited as `note`); False when already attached.

    For notes that come apart from a decision (a Matrix reply to the card). `event_id` makes it
    idempotent: a re-synced reply is not attached twice.
    """
    note = " ".join(note.split())
    if not note:
        raise DecisionRefused("the note is empty")
    if len(note) > MAX_NOTE:
        raise DecisionRefused(f"the note is {len(note)} characters; at most {MAX_NOTE} are kept")
    found = await engine.get_case(case_id)
    if found is None or (community is not None and found[0].community != community):
        raise DecisionRefused(f"there is no case #{case_id}" + (" here" if community is not None else ""))
    for entry in found[2]:
        if entry["action"] == "note" and json.loads(entry.get("detail") or "{}").get("event") == event_id:
            return False
    await engine.audit(
        at or datetime.now(UTC),
        moderator,
        "note",
        {"note": note, "event": event_id},
        community=found[0].community,
        case_id=case_id,
    )
    return True


class DecisionRefused(ValueError):
    """A decision that cannot be applied (no such case, closed case, wrong community, bad note)."""


@dataclass(frozen=True)
class DecisionOutcome:
    """What happened to a case: its status before and after, for the surface to tell the moderator."""

    case_id: int
    decision: Decision
    before: str
    after: str


async def decide(
    engine: EnginePort,
    case_id: int,
    decision: Decision,
    moderator: str,
    note: str = "",
    *,
    event_id: str | None = None,
    community: str | None = None,
    at: datetime | None = None,
    duration_minutes: int | None = None,
) -> DecisionOutcome:
    """Apply one moderator decision through the engine: audited, card edited, enforcement queued.

    Every surface calls this (Discord buttons and modals, Matrix reactions, `groomguard cases decide`,
    the web view), so a decision has the same effects wherever it was made. `community`, when given, must
    be the case's own (a Discord server may only decide its own cases). Raises DecisionRefused with a
    sentence for the moderator when the decision cannot apply.
    """
    note = " ".join(note.split())
    if len(note) > MAX_NOTE:
        raise DecisionRefused(f"the note is {len(note)} characters; at most {MAX_NOTE} are kept")
    found = await engine.get_case(case_id)
    if found is None or (community is not None and found[0].community != community):
        raise DecisionRefused(f"there is no case #{case_id}" + (" here" if community is not None else ""))
    case = found[0]
    if event_id is not None and await _known(engine, f"{case.platform}:{event_id}"):
        # The same press or reaction delivered again (a re-sync after a restart): already applied.
        return DecisionOutcome(case_id, decision, case.status, case.status)
    if case.status not in ACTIVE:
        raise DecisionRefused(f"case #{case_id} is already {case.status}")
    event = ModeratorDecision(
        event_id=event_id or f"decision:{uuid.uuid4().hex}",
        platform=case.platform,
        community=case.community,
        at=at or datetime.now(UTC),
        moderator=moderator,
        case_id=case_id,
        decision=decision,
        duration_minutes=duration_minutes,
        note=note,
    )
    await engine.decide(event)
    after = await engine.get_case(case_id)
    return DecisionOutcome(case_id, decision, case.status, after[0].status if after else case.status)


__all__ = [
    "MAX_NOTE",
    "DecisionOutcome",
    "DecisionRefused",
    "add_note",
    "case_queue",
    "clock_for",
    "community_clocks",
    "decide",
    "detail",
    "evidence_line",
    "evidence_when",
    "summarise",
]
