"""Batch scoring, labelled evaluation and early-detection metrics for the grooming-language model."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from groomguard.classifier import TextClassifier, load_default_classifier
from groomguard.evidence import with_second_opinion
from groomguard.stages import StageTagger, default_tagger

__all__ = [
    "BadLine",
    "EvalReport",
    "binary_metrics",
    "evaluate_file",
    "latency_penalty",
    "roc_auc",
    "score_file",
]

log = logging.getLogger(__name__)

BATCH: Final = 512
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


class Router(Protocol):
    """The slice of `groomguard.language_routing.LanguageRouting` that batch scoring needs."""

    def language(self, text: str) -> tuple[str, str]: ...

    def covers(self, code: str) -> bool: ...

    def classifier(self, code: str) -> TextClassifier: ...

    def second_opinion(self) -> TextClassifier | None: ...


def score_routed(texts: Sequence[str], model: TextClassifier, router: Router | None) -> list[tuple[float | None, str]]:
    """(score, language name) per text: English and covered languages get a number, others None."""
    out: list[tuple[float | None, str]] = [(None, "English")] * len(texts)
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        code, name = router.language(text) if router is not None else ("en", "English")
        out[i] = (None, name)
        if code == "en" or (router is not None and router.covers(code)):
            groups.setdefault(code, []).append(i)
    for code, rows in groups.items():
        scorer = model if code == "en" or router is None else router.classifier(code)
        scores = [float(x) for x in scorer.classify([texts[i] for i in rows])]
        second = router.second_opinion() if code == "en" and router is not None else None
        if second is not None:
            # As in the detector: texts the n-gram model finds risky are re-read by the embedding model.
            scores = with_second_opinion(scores, [texts[i] for i in rows], second.classify)
        for i, score in zip(rows, scores, strict=True):
            out[i] = (score, out[i][1])
    return out


def _default_router() -> Router | None:
    from groomguard.language_routing import default_router

    return default_router()


# --------------------------------------------------------------------------- metrics


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve by the rank-sum formula (ties averaged); NaN if one class only."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _fbeta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator > 0 else 0.0


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, F0.5, ROC AUC and the confusion matrix at `threshold`."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    predicted = (s >= threshold).astype(np.int64)
    tp = int(((predicted == 1) & (y == 1)).sum())
    fp = int(((predicted == 1) & (y == 0)).sum())
    fn = int(((predicted == 0) & (y == 1)).sum())
    tn = int(((predicted == 0) & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": len(y),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": _fbeta(precision, recall, 1.0),
        "f0_5": _fbeta(precision, recall, 0.5),
        "roc_auc": roc_auc(y.tolist(), s.tolist()),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


# ------------------------------------------------------------------- eval command


@dataclass(frozen=True, slots=True)
class BadLine:
    """An input line that was skipped, with a reason that never quotes the text."""

    line: int
    reason: str


@dataclass(slots=True)
class EvalReport:
    """What `groomguard eval` prints: metrics at the shipped threshold plus skipped lines."""

    metrics: dict[str, Any]
    bad_lines: list[BadLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN AUC becomes null)."""
        metrics = dict(self.metrics)
        if isinstance(metrics.get("roc_auc"), float) and math.isnan(metrics["roc_auc"]):
            metrics["roc_auc"] = None
        return {
            "metrics": metrics,
            "skipped": len(self.bad_lines),
            "bad_lines": [asdict(b) for b in self.bad_lines[:50]],
        }

    def format(self) -> str:
        """A short plain-text table for a terminal."""
        m = self.metrics
        c = m["confusion"]
        auc = m["roc_auc"]
        lines = [
            f"examples   {m['n']}  (skipped {len(self.bad_lines)})",
            f"threshold  {m['threshold']:.3f}",
            f"precision  {m['precision']:.3f}",
            f"recall     {m['recall']:.3f}",
            f"F1         {m['f1']:.3f}",
            f"F0.5       {m['f0_5']:.3f}",
            f"ROC AUC    {'n/a' if math.isnan(auc) else f'{auc:.3f}'}",
            "confusion  predicted 1   predicted 0",
            f"  label 1  {c['tp']:>11}   {c['fn']:>11}",
            f"  label 0  {c['fp']:>11}   {c['tn']:>11}",
        ]
        lines += [f"{reason}: {n} lines" for reason, n in m.get("not_scored", {}).items()]
        lines += [f"line {b.line}: {b.reason}" for b in self.bad_lines[:20]]
        return "\n".join(lines)


def _read_jsonl(path: Path, need_label: bool, bad: list[BadLine]) -> Iterator[tuple[int, Any, str, int | None]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad.append(BadLine(number, "not valid JSON"))
                continue
            if not isinstance(item, dict):
                bad.append(BadLine(number, "not a JSON object"))
                continue
            text = item.get("text")
            if not isinstance(text, str):
                bad.append(BadLine(number, "missing or non-string 'text'"))
                continue
            if _SURROGATE_RE.search(text):
                bad.append(BadLine(number, "'text' holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode"))
                continue
            label = item.get("label")
            if need_label:
                if isinstance(label, bool) or label not in (0, 1):
                    bad.append(BadLine(number, "missing 'label' (must be 0 or 1)"))
                    continue
                label = int(label)
            yield number, item.get("id", number), text, label


def _batched(
    rows: Iterator[tuple[int, Any, str, int | None]], size: int = BATCH
) -> Iterator[list[tuple[int, Any, str, int | None]]]:
    batch: list[tuple[int, Any, str, int | None]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _threshold_of(classifier: TextClassifier, threshold: float | None) -> float:
    if threshold is not None:
        return threshold
    return float(getattr(classifier, "threshold", 0.5))


def score_file(
    input: Path,
    output: Path,
    classifier: TextClassifier | None = None,
    threshold: float | None = None,
    tagger: StageTagger | None = None,
) -> int:
    """Score every `{"id", "text"}` line of `input` into `output`; returns lines written.

    Bad lines are logged with their line number (never their text) and skipped; the count
    of skipped lines is logged at the end. `text` may be a message or a conversation segment.
    """
    model = classifier if classifier is not None else load_default_classifier()
    router = _default_router() if classifier is None else None
    cutoff = _threshold_of(model, threshold)
    stages = tagger if tagger is not None else default_tagger()
    bad: list[BadLine] = []
    written = 0
    with output.open("w", encoding="utf-8") as out:
        for batch in _batched(_read_jsonl(Path(input), False, bad)):
            routed = score_routed([text for _, _, text, _ in batch], model, router)
            for (_, ident, text, _), (score, language) in zip(batch, routed, strict=True):
                record: dict[str, Any] = {"id": ident, "language": language}
                if score is None:
                    # A language no model covers is reported, never given a number.
                    record.update(score=None, label=None, not_scored=f"not scored: {language}")
                else:
                    record.update(score=round(score, 6), label=int(score >= cutoff), stages=list(stages.stages(text)))
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
    for b in bad:
        log.warning("skipped %s line %d: %s", Path(input).name, b.line, b.reason)
    if bad:
        log.warning("skipped %d bad lines of %s", len(bad), Path(input).name)
    return written


def evaluate_file(input: Path, classifier: TextClassifier | None = None, threshold: float | None = None) -> EvalReport:
    """Metrics for labelled `{"text", "label": 0|1}` lines at the shipped threshold."""
    model = classifier if classifier is not None else load_default_classifier()
    router = _default_router() if classifier is None else None
    cutoff = _threshold_of(model, threshold)
    bad: list[BadLine] = []
    labels: list[int] = []
    scores: list[float] = []
    unscored: dict[str, int] = {}
    for batch in _batched(_read_jsonl(Path(input), True, bad)):
        routed = score_routed([text for _, _, text, _ in batch], model, router)
        for (_, _, _, label), (score, language) in zip(batch, routed, strict=True):
            if score is None:
                unscored[language] = unscored.get(language, 0) + 1
                continue
            scores.append(score)
            labels.append(int(label or 0))
    metrics = binary_metrics(labels, scores, cutoff)
    metrics["not_scored"] = {f"not scored: {lang}": n for lang, n in sorted(unscored.items())}
    return EvalReport(metrics, bad)


# -------------------------------------------------------------- early detection


def latency_penalty(k: int, p: float) -> float:
    """Penalty for raising the alarm at message `k` (Sadeque et al. 2018, used by eSPD)."""
    return -1.0 + 2.0 / (1.0 + math.exp(-p * (k - 1)))
