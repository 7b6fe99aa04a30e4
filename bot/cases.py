"""Cases: one active case per suspect per community, risk with decay, alerts, and moderator decisions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict, cast

from groomguard.actions import Enforcement, ModAlert, Reason
from groomguard.config import CaseSettings
from groomguard.events import Decision, ModeratorDecision
from groomguard.findings import Evidence, Finding
from groomguard.privacy import scrub_value

log = logging.getLogger(__name__)


class CaseStatus(StrEnum):
    """Where a case stands; the values are what the database, JSON rows and cards carry (unchanged)."""

    OPEN = "open"
    ESCALATED = "escalated"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    BANNED = "banned"


ACTIVE = frozenset({CaseStatus.OPEN, CaseStatus.ESCALATED, CaseStatus.CONFIRMED})
STATUS_AFTER = {
    Decision.CONFIRM: CaseStatus.CONFIRMED,
    Decision.DISMISS: CaseStatus.DISMISSED,
    Decision.ESCALATE: CaseStatus.ESCALATED,
    Decision.TIMEOUT: CaseStatus.CONFIRMED,
    Decision.KICK: CaseStatus.CONFIRMED,
    Decision.BAN: CaseStatus.BANNED,
}
#: Risk must move at least this much before an already-posted card is edited again.
MIN_RISK_CHANGE = 0.05
#: Children a case keeps (and a card lists); beyond it the oldest are dropped.
MAX_CHILDREN = 200

#: Plain-words risk bands, lowest first: (floor, band, what a moderator should do).
BANDS = (
    (0.0, "low", "keep an eye on it"),
    (0.5, "moderate", "review the evidence"),
    (0.7, "high", "review now and check on the children involved"),
    (0.85, "very high", "act now: restrict the account and check on the children involved"),
)
CLOSED_ACTION = {CaseStatus.DISMISSED: "none (dismissed)", CaseStatus.BANNED: "none (banned)"}


class EvidenceRow(TypedDict):
    """One `Evidence` as a case keeps it in its JSON row (`Evidence.model_dump(mode="json")`)."""

    kind: str
    ref: str
    label: str
    #: When the thing happened, ISO 8601 (the finding's time when the detector gave none).
    at: str | None
    #: The child the item is about, if any.
    child: str | None


class _FoundReason(TypedDict):
    """The keys every case reason has (see `CaseReason`)."""

    #: The finding's reason, in moderators' words.
    text: str
    #: Its score (lowered by dismissals); the case's risk is the noisy-OR of these, decayed.
    score: float
    #: Event time of the finding, ISO 8601 (decay counts from it).
    at: str
    evidence: list[EvidenceRow]


class CaseReason(_FoundReason, total=False):
    """One detector's latest contribution to a case, as stored in the case row's JSON (`reasons`).

    (`total=False` on a subclass rather than `NotRequired`: with postponed annotations Python 3.11
    cannot see `NotRequired` and would make the key required.)
    """

    #: `text` as the posted card showed it; absent until a card showed this detector.
    alerted_text: str


#: Plain-words titles for detectors, shown on cards and in `cases` output instead of detector names.
DETECTOR_TITLES = {
    "fan_out": "Contacting many children",
    "rejections": "Many refused requests from children",
    "view_spike": "Unusual viewing of children's posts",
    "grooming_language": "Grooming language towards a child",
    "new_account_contact": "New account contacting children",
}


def detector_title(name: str) -> str:
    """A detector's plain title; an unknown detector gets its name in words."""
    return DETECTOR_TITLES.get(name, name.replace("_", " ").capitalize())


def risk_note(half_life_hours: float) -> str:
    """The one line every card prints under the risk: what the number means and how it moves."""
    every = f"{half_life_hours / 24:g} days" if half_life_hours % 24 == 0 else f"{half_life_hours:g} hours"
    return (
        "Risk is how strongly all signs together point to grooming, from 0 to 1; it halves every "
        f"{every} without new signs. Peak is the highest it has been."
    )


def risk_band(risk: float) -> str:
    """'low', 'moderate', 'high' or 'very high' (what the cards print)."""
    return next(name for floor, name, _ in reversed(BANDS) if risk >= floor)


#: Detectors whose evidence is a conversation happening now: moderators should read it, not only the pattern.
CONVERSATION_DETECTORS = frozenset({"grooming_language"})


def recommended_action(risk: float, status: CaseStatus, detectors: Iterable[str] = ()) -> str:
    """What the card asks moderators to do; a closed case asks nothing.

    The band sets the urgency; grooming language on the case adds "read the conversation", so the
    first language finding on a case that already had a card changes the action (and edits at once).
    """
    if status in CLOSED_ACTION:
        return CLOSED_ACTION[status]
    action = next(todo for floor, _, todo in reversed(BANDS) if risk >= floor)
    if CONVERSATION_DETECTORS & set(detectors) and risk >= BANDS[1][0]:
        action += "; read the conversation"
    return f"{action} (escalated)" if status == CaseStatus.ESCALATED else action


def decayed(score: float, since: datetime, now: datetime, half_life_hours: float) -> float:
    """Exponential decay: a finding loses half its weight every `half_life_hours`."""
    hours = max(0.0, (now - since).total_seconds() / 3600)
    return score * 0.5 ** (hours / half_life_hours)


@dataclass
class Case:
    """An investigation of one suspect; `reasons` holds each detector's latest score and evidence."""

    id: int
    platform: str
    community: str
    suspect: str
    status: CaseStatus
    opened_at: datetime
    updated_at: datetime
    alert_version: int = 0
    alerted_risk: float = 0.0
    #: Event time the card was last posted or edited, and how many children it listed then.
    alerted_at: datetime | None = None
    alerted_children: int = 0
    #: The status the posted card showed (None before the first card).
    alerted_status: CaseStatus | None = None
    dismissals: int = 0
    children: list[str] = field(default_factory=list)
    reasons: dict[str, CaseReason] = field(default_factory=dict)
    #: The highest risk the case has had (right after a finding; decay and dismissals only lower it).
    peak_risk: float = 0.0

    def risk(self, now: datetime, half_life_hours: float) -> float:
        """Noisy-OR across detectors of each one's decayed score: independent signals add up."""
        keep = 1.0
        for r in self.reasons.values():
            keep *= 1.0 - decayed(r["score"], datetime.fromisoformat(r["at"]), now, half_life_hours)
        return 1.0 - keep

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_row(self, now: datetime, half_life: float) -> tuple[Any, ...]:
        return (
            self.id,
            self.platform,
            self.community,
            self.suspect,
            self.status.value,
            self.risk(now, half_life),
            now.isoformat(),
            self.opened_at.isoformat(),
            self.updated_at.isoformat(),
            self.alert_version,
            self.dismissals,
            json.dumps(self.children),
            json.dumps(
                {
                    "reasons": self.reasons,
                    "alerted_risk": self.alerted_risk,
                    "alerted_at": self.alerted_at.isoformat() if self.alerted_at else None,
                    "alerted_children": self.alerted_children,
                    "alerted_status": self.alerted_status.value if self.alerted_status else "",
                    "peak_risk": self.peak_risk,
                }
            ),
        )

    @classmethod
    def from_row(cls, row: Any) -> Case:
        extra = json.loads(row["reasons"])
        return cls(
            id=row["id"],
            platform=row["platform"],
            community=row["community"],
            suspect=row["suspect"],
            status=CaseStatus(row["status"]),
            opened_at=datetime.fromisoformat(row["opened_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            alert_version=row["alert_version"],
            alerted_risk=extra.get("alerted_risk", 0.0),
            alerted_at=datetime.fromisoformat(extra["alerted_at"]) if extra.get("alerted_at") else None,
            alerted_children=extra.get("alerted_children", 0),
            alerted_status=CaseStatus(extra["alerted_status"]) if extra.get("alerted_status") else None,
            dismissals=row["dismissals"],
            children=json.loads(row["children"]),
            reasons=extra.get("reasons", {}),
            peak_risk=float(extra.get("peak_risk", 0.0)),
        )


@dataclass
class Audit:
    at: datetime
    actor: str
    action: str
    community: str | None
    case_id: int | None
    detail: dict[str, Any]


class CaseBook:
    """Turns findings into case updates and alerts, and moderator decisions into enforcement."""

    def __init__(self, settings: CaseSettings) -> None:
        self.settings = settings
        self.active: dict[tuple[str, str], Case] = {}
        self.by_id: dict[int, Case] = {}
        self.dismissals: dict[tuple[str, str], int] = {}
        self.next_id = 1
        self.case_ids: Callable[[str], int] | None = None
        self.dirty: dict[int, Case] = {}
        self.audit: list[Audit] = []
        #: Card edits skipped by the edit interval (they show on a later edit).
        self.held_back = 0

    def load(
        self,
        cases: list[Case],
        next_id: int,
        dismissals: dict[tuple[str, str], int],
        case_ids: Callable[[str], int] | None = None,
    ) -> None:
        """Take the store's open cases; `case_ids` (community -> new id) replaces counting from `next_id`
        where several engines open cases in one database (groomguard.store.partitions)."""
        for case in cases:
            self.by_id[case.id] = case
            if case.active:
                self.active[(case.community, case.suspect)] = case
        self.next_id = next_id
        self.dismissals = dismissals
        self.case_ids = case_ids

    def threshold_for(self, community: str, suspect: str) -> float:
        """Alert threshold, raised for suspects whose earlier cases moderators dismissed."""
        step = self.settings.dismissed_threshold_step * self.dismissals.get((community, suspect), 0)
        return min(0.99, self.settings.alert_threshold + step)

    def add_finding(self, finding: Finding) -> tuple[Case, ModAlert | None]:
        """Fold a finding into the suspect's active case (opening one if needed); maybe alert."""
        key = (finding.community, finding.suspect)
        case = self.active.get(key)
        if case is None:
            case_id = self.next_id if self.case_ids is None else self.case_ids(finding.community)
            case = Case(
                case_id,
                finding.platform,
                finding.community,
                finding.suspect,
                CaseStatus.OPEN,
                finding.at,
                finding.at,
            )
            # Counts openings in both numberings (the engine's cases_opened reads it).
            self.next_id += 1
            self.active[key] = case
            self.by_id[case.id] = case
        half_life = self.settings.half_life_hours
        previous = case.reasons.get(finding.detector)
        old = (
            decayed(previous["score"], datetime.fromisoformat(previous["at"]), finding.at, half_life)
            if previous
            else 0.0
        )
        if finding.score >= old or previous is None:
            # Every item carries a time: the detector's own, else the finding's (mode="json": stored as text).
            evidence = [
                cast(
                    EvidenceRow,
                    (e if e.at is not None else e.model_copy(update={"at": finding.at})).model_dump(mode="json"),
                )
                for e in finding.evidence[: self.settings.max_evidence]
            ]
            case.reasons[finding.detector] = {
                "text": finding.reason,
                "score": finding.score,
                "at": finding.at.isoformat(),
                "evidence": evidence,
            }
            if previous is not None and "alerted_text" in previous:
                # What the posted card shows, so the next edit can say what changed since.
                case.reasons[finding.detector]["alerted_text"] = previous["alerted_text"]
        # Every child the finding counts, not only the one whose event triggered it.
        for child in (*finding.children, finding.child):
            if child and child not in case.children and child != case.suspect:
                case.children.append(child)
        del case.children[: max(0, len(case.children) - MAX_CHILDREN)]
        case.updated_at = max(case.updated_at, finding.at)
        case.peak_risk = max(case.peak_risk, case.risk(finding.at, half_life))
        self.dirty[case.id] = case
        return case, self._maybe_alert(case, finding.at)

    def _maybe_alert(self, case: Case, now: datetime) -> ModAlert | None:
        """Post the first card at the threshold; after that edit it only when something a moderator
        would act on changed, and at most once per `card_edit_interval_minutes` unless the risk band or
        the recommended action moved. A held-back change shows on the next edit, counted from the card
        as last posted."""
        risk = case.risk(now, self.settings.half_life_hours)
        if case.alert_version == 0:
            if risk < self.threshold_for(case.community, case.suspect):
                return None
            return self._alert(case, now, risk)
        changes = self.changes(case, risk)
        if not changes:
            return None
        urgent = risk_band(risk) != risk_band(case.alerted_risk) or self._recommended(case, risk) != self._recommended(
            case, None
        )
        interval = timedelta(minutes=self.settings.card_edit_interval_minutes)
        if not urgent and case.alerted_at is not None and now - case.alerted_at < interval:
            self.held_back += 1
            return None
        return self._alert(case, now, risk, changes)

    def changes(self, case: Case, risk: float) -> list[str]:
        """What differs from the card as last posted, in moderators' words (empty: nothing to edit)."""
        out = []
        old_band, new_band = risk_band(case.alerted_risk), risk_band(risk)
        if old_band != new_band:
            out.append(f"risk {case.alerted_risk:.2f} → {risk:.2f} ({old_band} → {new_band})")
        elif abs(risk - case.alerted_risk) >= MIN_RISK_CHANGE:
            out.append(f"risk {case.alerted_risk:.2f} → {risk:.2f}")
        for detector, r in sorted(case.reasons.items()):
            if "alerted_text" not in r:
                out.append(f"new signal · {detector_title(detector)}: {r['text'][:200]}")
            elif r["alerted_text"] != r["text"]:
                out.append(f"{detector_title(detector)}: {r['text'][:200]}")
        added = len(case.children) - case.alerted_children
        if added > 0:
            out.append(f"{added} more child{'ren' if added > 1 else ''} involved ({len(case.children)} in all)")
        if out:
            before, after = self._recommended(case, None), self._recommended(case, risk)
            if before != after:
                out.append(f"recommended: {after}")
        return out

    @staticmethod
    def _recommended(case: Case, risk: float | None) -> str:
        """The recommended action now (`risk` given) or as the posted card showed it (`risk` None)."""
        if risk is not None:
            return recommended_action(risk, case.status, case.reasons)
        shown = [d for d, r in case.reasons.items() if "alerted_text" in r]
        return recommended_action(case.alerted_risk, case.alerted_status or case.status, shown)

    def _alert(
        self, case: Case, now: datetime, risk: float | None = None, changes: list[str] | tuple[str, ...] = ()
    ) -> ModAlert:
        risk = case.risk(now, self.settings.half_life_hours) if risk is None else risk
        case.alert_version += 1
        case.alerted_risk = risk
        case.alerted_at = now
        case.alerted_children = len(case.children)
        case.alerted_status = case.status
        for r in case.reasons.values():
            r["alerted_text"] = r["text"]
        self.dirty[case.id] = case
        return self.render(case, now, risk, tuple(changes))

    def render(self, case: Case, now: datetime, risk: float | None = None, changes: tuple[str, ...] = ()) -> ModAlert:
        """The alert card for a case as it stands (also used by `cases show`)."""
        risk = case.risk(now, self.settings.half_life_hours) if risk is None else risk
        ordered = sorted(case.reasons.items(), key=lambda kv: -kv[1]["score"])
        evidence: list[Evidence] = []
        for _, r in ordered:
            evidence.extend(Evidence(**e) for e in r.get("evidence", []))
        return ModAlert(
            action_id=f"alert:{case.community}:{case.id}:{case.alert_version}",
            platform=case.platform,
            community=case.community,
            case_id=case.id,
            version=max(1, case.alert_version),
            suspect=case.suspect,
            risk=round(min(1.0, max(0.0, risk)), 3),
            peak=round(min(1.0, max(0.0, case.peak_risk, risk)), 3),
            risk_note=risk_note(self.settings.half_life_hours),
            status=case.status,
            reasons=tuple(
                Reason(detector=d, text=r["text"], score=round(r["score"], 3), title=detector_title(d))
                for d, r in ordered
            ),
            evidence=tuple(evidence[: self.settings.max_evidence]),
            children=tuple(case.children),
            band=risk_band(risk),
            recommended=recommended_action(risk, case.status, case.reasons),
            changes=changes,
            at=now,
        )

    def decide(self, event: ModeratorDecision) -> list[ModAlert | Enforcement]:
        """Apply a moderator's decision; returns the card update and any platform enforcement."""
        case = self.by_id.get(event.case_id)
        if case is None or case.community != event.community or case.platform != event.platform:
            self.audit.append(
                Audit(
                    event.at,
                    event.moderator,
                    "decision_rejected",
                    event.community,
                    event.case_id,
                    {"decision": event.decision.value, "why": "no such case in this community"},
                )
            )
            log.warning("decision %s on unknown case %s ignored", event.key, event.case_id)
            return []
        if not case.active:
            self.audit.append(
                Audit(
                    event.at,
                    event.moderator,
                    "decision_rejected",
                    case.community,
                    case.id,
                    {"decision": event.decision.value, "why": f"case is {case.status}"},
                )
            )
            return []
        before = case.status
        case.status = STATUS_AFTER[event.decision]
        case.updated_at = max(case.updated_at, event.at)
        if event.decision is Decision.DISMISS:
            # Dismissal is feedback: lower this case's weight and raise the bar for the suspect's next alert.
            for r in case.reasons.values():
                r["score"] *= self.settings.dismiss_factor
            case.dismissals += 1
            key = (case.community, case.suspect)
            self.dismissals[key] = self.dismissals.get(key, 0) + 1
        if not case.active:
            self.active.pop((case.community, case.suspect), None)
        self.audit.append(
            Audit(
                event.at,
                event.moderator,
                event.decision.value,
                case.community,
                case.id,
                {"note": event.note, "duration_minutes": event.duration_minutes, "event": event.key},
            )
        )
        self.dirty[case.id] = case
        # A decision always edits the card at once: moderators must see who acted.
        what = [f"{event.decision.value} by a moderator (status {before} → {case.status})"]
        out: list[ModAlert | Enforcement] = [self._alert(case, event.at, changes=what)]
        if event.decision in (Decision.BAN, Decision.TIMEOUT, Decision.KICK):
            out.append(
                Enforcement(
                    action_id=f"enforce:{event.key}",
                    platform=case.platform,
                    community=case.community,
                    case_id=case.id,
                    suspect=case.suspect,
                    decision=event.decision,
                    duration_minutes=event.duration_minutes or (60 if event.decision is Decision.TIMEOUT else None),
                    moderator=event.moderator,
                    reason=f"GroomGuard case #{case.id}: {event.decision.value} by moderator",
                    at=event.at,
                )
            )
        return out

    def take_dirty(self) -> tuple[list[Case], list[Audit]]:
        dirty, audit = list(self.dirty.values()), self.audit
        self.dirty, self.audit = {}, []
        return dirty, audit

    def forget(self, account: str, community: str | None = None) -> None:
        for case in [
            c for c in self.by_id.values() if c.suspect == account and (community is None or c.community == community)
        ]:
            self.by_id.pop(case.id, None)
            self.active.pop((case.community, case.suspect), None)
        for case in self.by_id.values():
            if community is not None and case.community != community:
                continue
            if account in case.children:
                case.children.remove(account)
            for reason in case.reasons.values():
                reason["evidence"] = [e for e in reason.get("evidence", []) if e.get("ref") != account]
            # Reason texts and evidence labels may still name it ("friend to kid5 on ..."): scrub them too.
            case.reasons = scrub_value(case.reasons, account)
