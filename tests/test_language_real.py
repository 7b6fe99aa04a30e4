"""The shipped language models end to end: probes through the real detector, other languages, `score` output.

The probes in models/probes/ are hand-written (synthetic) conversations, never corpus text. Floors
here are requirements, not the measured figures: the model card reports those.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from groomguard.corpora import load_probes
from groomguard.detectors.grooming_language import GroomingLanguageDetector, GroomingLanguageSettings
from groomguard.events import AgeBand
from groomguard.findings import Finding
from groomguard.records import Account
from groomguard.scoring import score_file
from groomguard.testing import EventFactory

pytestmark = pytest.mark.model


class Bands:
    """A DetectorState with one adult and one child."""

    async def account(self, community: str, account: str) -> Account:
        return Account(account=account, band=AgeBand.MINOR if account == "kid" else AgeBand.ADULT)


async def converse(lines: list[str] | tuple[str, ...]) -> tuple[list[Finding], GroomingLanguageDetector]:
    detector = GroomingLanguageDetector(GroomingLanguageSettings())
    f = EventFactory()
    out: list[Finding] = []
    for line in lines:
        event = f.message("adult", line, conversation="dm", private=True, recipients=("kid",), at=f.tick(minutes=1))
        out.extend(await detector.inspect(event, Bands()))  # type: ignore[arg-type]
    return out, detector


async def remembered(detector: GroomingLanguageDetector) -> dict[str, object]:
    """What the detector stored about the adult→kid conversation (its memory row)."""
    row = await detector._local.get(detector.name, "test-community", "dm\x1fadult\x1fkid")
    assert isinstance(row, dict)
    return row


def probes(lang: str, label: int) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.id, c.lines) for c in load_probes() if c.lang == lang and c.label == label]


@pytest.mark.parametrize(("ident", "lines"), probes("en", 0))
async def test_benign_and_terse_english_probes_stay_quiet(ident: str, lines: tuple[str, ...]) -> None:
    findings, _ = await converse(lines)
    assert findings == [], ident


async def test_english_grooming_probes_mostly_warn_the_child() -> None:
    groups = probes("en", 1)
    notified = 0
    for _, lines in groups:
        findings, _ = await converse(lines)
        notified += any(f.notify_child for f in findings)
    # Paraphrased, stock-phrase-free grooming: at least half must reach the child today.
    assert notified / len(groups) >= 0.5, f"{notified} of {len(groups)}"


async def test_the_detector_runs_at_the_thresholds_the_training_run_validated() -> None:
    """Empty threshold settings mean grooming.json's notice and moderator thresholds (what `eval` reports)."""
    from groomguard.classifier import ModelInfo

    info = ModelInfo.load()
    detector = GroomingLanguageDetector(GroomingLanguageSettings())
    assert (detector.notice_threshold, detector.moderator_threshold) == (
        info.notice_threshold,
        info.moderator_threshold,
    )
    assert detector.notice_threshold < 0.8  # the validated notice threshold, not the fallback for fakes


async def test_explicit_talk_alone_never_alerts_but_probing_for_age_and_parents_does() -> None:
    """Written for this test: sexual talk with no child-directed stage stays below the moderator threshold;
    the same adult asking the child's age and whether the parents are home then alerts."""
    explicit = [
        "you are so hot tonight",
        "i want you so bad",
        "tell me what you are wearing",
        "i keep thinking about kissing you",
        "you make me so horny",
        "send me something sexy",
    ]
    findings, detector = await converse(explicit)
    assert all(f.score < detector.moderator_threshold for f in findings)
    findings, detector = await converse(
        [*explicit, "how old are you again", "are your parents home right now", "dont tell anyone we talk"]
    )
    assert any(f.score >= detector.moderator_threshold for f in findings)


async def test_the_issues_terse_parent_chat_raises_nothing() -> None:
    findings, detector = await converse(["ok", "lol", "ok cool", "haha", "k", "yes", "sure", "👍"] * 3)
    assert findings == []
    conv = await remembered(detector)
    assert conv["count"] == 24 and all(e["informative"] == 0 for e in conv["evidence"].values())


@pytest.mark.parametrize(
    ("lines", "language"),
    [
        (["مرحبا كيف حالك اليوم", "هل أنت وحدك في البيت", "لا تخبر أحدا عن حديثنا"], "Arabic"),
        (["привет как дела", "ты сейчас одна дома", "никому не рассказывай о нас"], "Russian"),
        (["こんにちは、元気ですか", "今ひとりですか", "誰にも言わないでね"], "Japanese"),
    ],
)
async def test_uncovered_languages_are_reported_not_scored(lines: list[str], language: str) -> None:
    findings, detector = await converse(lines * 3)
    assert findings == []  # never a number, so never an alert either
    assert detector.unscored_messages.get(language) == len(lines) * 3
    conv = await remembered(detector)
    assert [e["unscored"] for e in conv["evidence"].values()] == [{language: len(lines) * 3}]
    assert all(e["scores"] == [] for e in conv["evidence"].values())


def test_score_output_says_not_scored_for_uncovered_languages(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [
        {"id": 1, "text": "are you home alone? dont tell your mum we talk, add me on snap"},
        {"id": 2, "text": "مرحبا كيف حالك اليوم يا صديقي"},
        {"id": 3, "text": "ok"},
    ]
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert score_file(source, out) == 3
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[0]["score"] > records[2]["score"] and records[0]["language"] == "English"
    assert records[1]["score"] is None and records[1]["label"] is None
    assert records[1]["not_scored"] == "not scored: Arabic"
