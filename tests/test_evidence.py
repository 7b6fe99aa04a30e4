"""Conversation evidence: uninformative messages change nothing, evidence accumulates, stages add, state round-trips."""

from __future__ import annotations

import json

import pytest
from groomguard.classifier import FakeClassifier
from groomguard.corpora import Conversation
from groomguard.evaluation import ProductThresholds, latency_weighted_f1, replay, summarise
from groomguard.evidence import ConversationEvidence, EvidenceSettings, logit, sigmoid
from groomguard.stages import default_tagger
from groomguard.text import fold_text, model_text

SETTINGS = EvidenceSettings(window=5, smooth=3, notice_threshold=0.6)


def feed(evidence: ConversationEvidence, lines: list[str], score: float) -> None:
    for line in lines:
        text = model_text(fold_text(line))
        window = evidence.add(text, bool(text.strip()) and line not in ("ok", "lol"), (), SETTINGS)
        if window is not None:
            evidence.record(score, SETTINGS)


def test_uninformative_messages_neither_dilute_nor_inflate() -> None:
    a, b = ConversationEvidence(), ConversationEvidence()
    feed(a, ["are you home alone", "send me a pic", "dont tell your mum"], 0.9)
    feed(b, ["are you home alone", "ok", "lol", "send me a pic", "ok", "dont tell your mum", "lol"], 0.9)
    assert a.risk(SETTINGS, 0.1) == b.risk(SETTINGS, 0.1)
    assert b.messages == 7 and b.informative == 3
    assert list(a.window) == list(b.window)


def test_no_evidence_means_no_risk() -> None:
    evidence = ConversationEvidence()
    for _ in range(50):
        assert evidence.add("", False, (), SETTINGS) is None
    assert evidence.risk(SETTINGS, 0.1) == 0.0


def test_one_spike_does_not_raise_the_median() -> None:
    evidence = ConversationEvidence()
    for score in (0.1, 0.1, 0.95):
        evidence.add("x y", True, (), SETTINGS)
        evidence.record(score, SETTINGS)
    assert evidence.risk(SETTINGS, 0.1) == pytest.approx(0.1)


def test_escalation_after_probing_adds_most() -> None:
    def risk(stages: list[str]) -> float:
        evidence = ConversationEvidence()
        for stage in stages:
            evidence.add("words here", True, (stage,) if stage else (), SETTINGS)
            evidence.record(0.3, SETTINGS)
        return evidence.risk(SETTINGS, 0.1)

    flat = risk(["", "", ""])
    two = risk(["secrecy", "off_platform", ""])
    probed = risk(["personal_info", "secrecy", "off_platform"])
    assert flat == pytest.approx(0.3)
    assert flat < two < probed
    # Probing then three escalation stages is the pattern: at least the child-notice threshold.
    assert risk(["personal_info", "secrecy", "off_platform", "photos"]) >= SETTINGS.notice_threshold
    # Escalation *before* any probing earns no probing bonus.
    assert risk(["secrecy", "off_platform", "personal_info"]) == pytest.approx(two)


def test_snapshot_round_trips_exactly() -> None:
    evidence = ConversationEvidence()
    feed(evidence, ["how old are you", "ok", "keep it between us"], 0.7)
    evidence.stages["secrecy"] = 2
    evidence.note_unscored("Arabic")
    copy = ConversationEvidence.from_dict(json.loads(json.dumps(evidence.to_dict())))
    assert copy.to_dict() == evidence.to_dict()
    assert copy.risk(SETTINGS, 0.1) == evidence.risk(SETTINGS, 0.1)


def test_logit_and_sigmoid_are_inverse() -> None:
    for p in (0.01, 0.3, 0.5, 0.97):
        assert sigmoid(logit(p)) == pytest.approx(p)


THRESHOLDS = ProductThresholds(notice=0.6, moderator=0.8, min_messages=3, window=5, smooth=1)
GROOMING = ["hi", "how old r u", "dont tell anyone", "keep it secret", "add me on snap", "send a pic"]
BENIGN = ["hi", "how was school", "homework is on page 4", "see you tomorrow", "ok", "lol"]


def test_replay_finds_when_each_threshold_is_crossed() -> None:
    fake = FakeClassifier(keywords=("secret", "snap", "pic", "tell anyone"))
    tagger = default_tagger()
    hit = replay(GROOMING, fake.classify_folded, fake.informative, tagger, THRESHOLDS, fake.base_rate)
    quiet = replay(BENIGN, fake.classify_folded, fake.informative, tagger, THRESHOLDS, fake.base_rate)
    assert hit.notice_at is not None and hit.alert_at is not None and hit.notice_at <= hit.alert_at <= len(GROOMING)
    assert quiet.notice_at is None and quiet.alert_at is None
    assert quiet.informative == 3  # "hi", "ok" and "lol" carry nothing
    convs = [Conversation("g", "probe", 1, tuple(GROOMING)), Conversation("b", "probe", 0, tuple(BENIGN))]
    report = summarise(convs, [hit, quiet])["probe"]
    assert report["notice_recall"] == 1.0 and report["notice_rate"] == 0.0
    espd = latency_weighted_f1([hit], [quiet])
    assert espd["f1"] == 1.0 and 0 < espd["latency_weighted_f1"] <= 1.0


def test_two_models_agree_in_log_odds() -> None:
    from groomguard.evidence import agree

    assert agree(0.9, 0.9) == pytest.approx(0.9)
    assert agree(0.95, 0.05, weight=0.5) == pytest.approx(0.5)  # equal weights: opposite views cancel
    assert agree(0.95, 0.05) < 0.5 < agree(0.05, 0.95)  # the shipped weight leans on the second opinion
    assert agree(0.99, 0.2) < 0.99


def test_without_a_child_directed_stage_adult_talk_never_alerts_and_notifies_only_on_a_sure_model() -> None:
    """Sexual talk, "add me on snap" and photo requests alone (common between adults) stay below the alert."""
    settings = EvidenceSettings(window=5, smooth=1, notice_threshold=0.6, moderator_threshold=0.8)
    adult = ConversationEvidence()
    for line in ("you look hot", "add me on snap", "send a pic"):
        adult.add(line, True, ("sexual", "off_platform", "photos")[: 1 + len(adult.stages)], settings)
        adult.record(0.7, settings)  # the model: fairly sure, not sure enough
    assert set(adult.stages) == {"sexual", "off_platform", "photos"}
    assert adult.risk(settings, 0.1) < 0.6  # three escalations, but nothing only grooming shows
    adult.record(0.95, settings)  # the model alone is sure
    assert 0.6 <= adult.risk(settings, 0.1) < 0.8  # the child hears; moderators do not get an alert
    adult.add("how old are you", True, ("personal_info",), settings)  # probing for age: child-directed
    adult.record(0.95, settings)
    assert adult.risk(settings, 0.1) >= 0.8
