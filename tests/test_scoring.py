"""Tests for batch scoring, labelled evaluation and the early-detection latency penalty."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from groomguard.classifier import FakeClassifier
from groomguard.scoring import (
    binary_metrics,
    evaluate_file,
    latency_penalty,
    roc_auc,
    score_file,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_roc_auc_matches_hand_computed() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_binary_metrics_counts() -> None:
    m = binary_metrics([1, 1, 0, 0, 1], [0.9, 0.2, 0.7, 0.1, 0.6], 0.5)
    assert m["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["f0_5"] == pytest.approx(2 / 3)


def test_score_file_writes_scores_labels_stages_and_skips_bad_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _write(
        tmp_path / "in.jsonl",
        [
            json.dumps({"id": "a", "text": "don't tell anyone, add me on snap"}),
            json.dumps({"id": 7, "text": "see you at practice"}),
            "{not json",
            json.dumps({"id": "c"}),
            "",
            json.dumps({"id": "d", "text": "😀"}),
            json.dumps(["not", "an", "object"]),
            json.dumps({"id": "e", "text": "x" * 3_000_000}),
        ],
    )
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING):
        written = score_file(source, out, classifier=FakeClassifier())
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == len(rows) == 4
    assert [r["id"] for r in rows] == ["a", 7, "d", "e"]
    first = rows[0]
    assert first["label"] == 1 and 0.5 <= first["score"] <= 1
    assert first["stages"] == ["secrecy", "off_platform"]
    assert rows[1]["label"] == 0 and rows[1]["stages"] == []
    assert "line 3" in caplog.text and "line 4" in caplog.text and "line 7" in caplog.text
    assert "snap" not in caplog.text  # bodies are never logged


def test_evaluate_file_reports_all_metrics(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "eval.jsonl",
        [
            json.dumps({"text": "keep it a secret and send a pic", "label": 1}),
            json.dumps({"text": "are you home alone? meet me", "label": 1}),
            json.dumps({"text": "homework is on page 4", "label": 0}),
            json.dumps({"text": "add me on snap", "label": 0}),
            json.dumps({"text": "no label here"}),
            json.dumps({"text": "bool label", "label": True}),
        ],
    )
    report = evaluate_file(source, classifier=FakeClassifier())
    m = report.metrics
    assert m["n"] == 4
    assert m["confusion"] == {"tp": 2, "fp": 0, "fn": 0, "tn": 2}
    assert m["f0_5"] == pytest.approx(1.0)
    assert len(report.bad_lines) == 2
    text = report.format()
    for word in ("precision", "recall", "F1", "F0.5", "ROC AUC", "confusion"):
        assert word in text
    assert json.loads(json.dumps(report.to_dict()))["skipped"] == 2


def test_evaluate_single_class_has_no_auc(tmp_path: Path) -> None:
    source = _write(tmp_path / "e.jsonl", [json.dumps({"text": "hi", "label": 0})])
    report = evaluate_file(source, classifier=FakeClassifier())
    assert report.to_dict()["metrics"]["roc_auc"] is None
    assert "n/a" in report.format()


def test_latency_penalty_shape() -> None:
    p = math.log(3) / 89
    assert latency_penalty(1, p) == pytest.approx(0.0)
    assert latency_penalty(90, p) == pytest.approx(0.5)
    assert latency_penalty(10_000, p) == pytest.approx(1.0, abs=1e-6)


def test_a_lone_surrogate_is_a_clear_per_line_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "hi \\ud800 there"}\n{"id": 2, "text": "hello there"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert score_file(source, out, classifier=FakeClassifier()) == 1
    report = evaluate_file(source, classifier=FakeClassifier())
    assert report.bad_lines and "surrogate" in report.bad_lines[0].reason
