"""Case statuses are a StrEnum and case reasons a TypedDict, with the same values in the database and JSON."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, get_type_hints

from groomguard.app.runtime import build_engine
from groomguard.cases import ACTIVE, CaseBook, CaseReason, CaseStatus, EvidenceRow, recommended_action
from groomguard.config import CaseSettings
from groomguard.events import BaseEvent, Decision, MessageSent, ModeratorDecision
from groomguard.findings import Evidence, Finding
from groomguard.testing import T0, EventFactory, MemorySink, make_settings


def _finding(score: float, minutes: float = 0) -> Finding:
    return Finding(
        detector="fan_out",
        platform="test",
        community="test-community",
        suspect="adult",
        score=score,
        reason=f"contacted {int(score * 10)} minors",
        evidence=(Evidence(kind="account", ref="kid1", label="cold contact"),),
        at=T0 + timedelta(minutes=minutes),
        event_key=f"test:e{minutes}",
    )


def test_statuses_keep_their_stored_values() -> None:
    assert [s.value for s in CaseStatus] == ["open", "escalated", "confirmed", "dismissed", "banned"]
    assert {"open", "escalated", "confirmed"} == ACTIVE
    assert json.dumps({"status": CaseStatus.OPEN}) == '{"status": "open"}'
    assert recommended_action(0.9, CaseStatus.ESCALATED).endswith("(escalated)")


def test_reason_rows_have_the_typed_shape_and_round_trip_unchanged() -> None:
    assert set(get_type_hints(CaseReason)) == {"text", "score", "at", "evidence", "alerted_text"}
    assert CaseReason.__required_keys__ == {"text", "score", "at", "evidence"}
    assert set(get_type_hints(EvidenceRow)) == set(Evidence.model_fields)
    book = CaseBook(CaseSettings())
    case, alert = book.add_finding(_finding(0.7))
    assert alert is not None and alert.status == "open" and json.loads(alert.model_dump_json())["status"] == "open"
    reason = case.reasons["fan_out"]
    assert reason == {
        "text": "contacted 7 minors",
        "score": 0.7,
        "at": T0.isoformat(),
        "evidence": [
            {"kind": "account", "ref": "kid1", "label": "cold contact", "at": "2026-03-02T09:00:00Z", "child": None}
        ],
        "alerted_text": "contacted 7 minors",
    }
    row = case.to_row(T0, CaseSettings().half_life_hours)
    assert row[4] == "open" and type(row[4]) is str
    columns = ("id", "platform", "community", "suspect", "status", "risk", "risk_at", "opened_at", "updated_at")
    assert len(row) == len(columns) + 4, "the row's shape is the store's (see Case.to_row)"
    mapping = dict(zip((*columns, "alert_version", "dismissals", "children", "reasons"), row, strict=True))
    again = type(case).from_row(mapping)
    assert again.status is CaseStatus.OPEN and again.alerted_status is CaseStatus.OPEN
    assert again.reasons == case.reasons and again.to_row(T0, 24) == case.to_row(T0, 24)


def test_a_case_before_its_first_card_stores_an_empty_alerted_status() -> None:
    book = CaseBook(CaseSettings())
    case, alert = book.add_finding(_finding(0.2))
    assert alert is None and case.alerted_status is None
    assert json.loads(case.to_row(T0, 24)[-1])["alerted_status"] == ""


class _Steady:
    """A finding at 0.7 on every message, so the engine opens and alerts on a case the usual way."""

    name: ClassVar[str] = "fan_out"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: object) -> Sequence[Finding]:
        assert isinstance(event, MessageSent)
        return (_finding(0.7).model_copy(update={"at": event.at, "event_key": event.key}),)


async def test_the_store_keeps_plain_status_strings_and_loads_enum_members(tmp_path: Path, ev: EventFactory) -> None:
    db = tmp_path / "gg.db"
    engine = build_engine(make_settings(db), [MemorySink()], detectors=[_Steady()])
    await engine.start()
    await engine.ingest([ev.message("adult", "hello")])
    case = engine.cases.active[("test-community", "adult")]
    assert case.status is CaseStatus.OPEN
    decision = ModeratorDecision(
        event_id="d1",
        platform="test",
        community="test-community",
        at=ev.now + timedelta(minutes=5),
        case_id=case.id,
        decision=Decision.DISMISS,
        moderator="mod",
    )
    await engine.decide(decision)
    stored = await engine.get_case(case.id)
    await engine.stop()
    assert stored is not None and stored[0].status is CaseStatus.DISMISSED
    con = sqlite3.connect(db)
    status, reasons = con.execute("SELECT status, reasons FROM cases WHERE id = ?", (case.id,)).fetchone()
    con.close()
    assert status == "dismissed" and json.loads(reasons)["alerted_status"] == "dismissed"
    assert json.loads(reasons)["reasons"]["fan_out"]["alerted_text"] == "contacted 7 minors"
