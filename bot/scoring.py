"""Batch scoring, labelled evaluation and early-detection metrics for the grooming-language model."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from bot.classifier import TextClassifier, load_default_classifier
from bot.stages import StageTagger, default_tagger

__all__ = [
    "ESCALATION_BONUS",
    "BadLine",
    "EarlyDetectionReport",
    "EvalReport",
    "binary_metrics",
    "conversation_risk",
    "early_detection",
    "evaluate_file",
    "latency_penalty",
    "roc_auc",
    "score_file",
]

log = logging.getLogger(__name__)

#: Added to the model's conversation score when two or more *escalation* stages (secrecy,
#: isolation, moving off-platform, photos, sexual talk, meeting) appear within the recent
#: window, and again when they follow personal-information probing: the sequence
#: "how old are you / are your parents home" → "don't tell" → "add me on snap" is the pattern
#: the literature and moderators treat as most urgent, whatever any one line scores.
ESCALATION_BONUS: Final = 0.10
PROBING_BONUS: Final = 0.05
#: Distinct escalation stages after personal-information probing that make the pattern itself a signal.
PATTERN_MIN_ESCALATIONS: Final = 3
#: Conversation risk the full pattern guarantees: above the child-notice default (0.8), below the moderator one (0.9).
PATTERN_FLOOR: Final = 0.85
BATCH: Final = 512


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
    cutoff = _threshold_of(model, threshold)
    stages = tagger if tagger is not None else default_tagger()
    bad: list[BadLine] = []
    written = 0
    with output.open("w", encoding="utf-8") as out:
        for batch in _batched(_read_jsonl(Path(input), False, bad)):
            scores = model.classify([text for _, _, text, _ in batch])
            for (_, ident, text, _), score in zip(batch, scores, strict=True):
                record = {
                    "id": ident,
                    "score": round(score, 6),
                    "label": int(score >= cutoff),
                    "stages": list(stages.stages(text)),
                }
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
    cutoff = _threshold_of(model, threshold)
    bad: list[BadLine] = []
    labels: list[int] = []
    scores: list[float] = []
    for batch in _batched(_read_jsonl(Path(input), True, bad)):
        scores.extend(model.classify([text for _, _, text, _ in batch]))
        labels.extend(int(label or 0) for _, _, _, label in batch)
    return EvalReport(binary_metrics(labels, scores, cutoff), bad)


# ------------------------------------------------------------ conversation risk


def conversation_risk(
    window_scores: Sequence[float],
    recent_stages: Sequence[Sequence[str]],
    smooth: int = 3,
    tagger: StageTagger | None = None,
) -> float:
    """Risk of a conversation from its recent window scores and the stages of recent messages.

    The model part is the median of the last `smooth` window scores, so one odd message
    neither raises nor clears an alarm on its own. Stage progression adds a bonus: two or
    more distinct escalation stages in the window, more if they follow probing for
    personal information. Pure, so the detector and the offline evaluation share it.
    """
    if not window_scores:
        return 0.0
    recent = sorted(window_scores[-smooth:])
    model_part = recent[len(recent) // 2]
    stages = tagger if tagger is not None else default_tagger()
    escalation_seen: list[str] = []
    probing_at: int | None = None
    bonus = 0.0
    for position, message_stages in enumerate(recent_stages):
        for stage in message_stages:
            definition = stages.by_name.get(stage)
            if stage == "personal_info" and probing_at is None:
                probing_at = position
            if definition is not None and definition.escalation and stage not in escalation_seen:
                escalation_seen.append(stage)
    if len(escalation_seen) >= 2:
        bonus += ESCALATION_BONUS
        if probing_at is not None:
            bonus += PROBING_BONUS
    risk = model_part + bonus
    if probing_at is not None and len(escalation_seen) >= PATTERN_MIN_ESCALATIONS:
        # The textbook sequence (probing, then secrecy, another app, photos or meeting) is enough for a
        # kind notice to the child even when the model reads the wording as unfamiliar; moderators
        # still need the model to agree (the floor sits below the moderator threshold).
        risk = max(risk, PATTERN_FLOOR)
    return min(1.0, max(0.0, risk))


# -------------------------------------------------------------- early detection


def latency_penalty(k: int, p: float) -> float:
    """Penalty for raising the alarm at message `k` (Sadeque et al. 2018, used by eSPD)."""
    return -1.0 + 2.0 / (1.0 + math.exp(-p * (k - 1)))


@dataclass(slots=True)
class EarlyDetectionReport:
    """Conversation-level results of running the alarm message by message."""

    precision: float
    recall: float
    f1: float
    speed: float
    latency_weighted_f1: float
    p: float
    half_penalty_at: int
    messages_until_alert: list[int]
    confusion: dict[str, int]

    def summary(self) -> dict[str, Any]:
        """Median, quartiles and a coarse histogram of messages until the alert."""
        counts = sorted(self.messages_until_alert)

        def quantile(q: float) -> float | None:
            return float(np.quantile(counts, q)) if counts else None

        buckets = [(1, 10), (11, 25), (26, 50), (51, 100), (101, 250), (251, 10**9)]
        histogram = {
            (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"): sum(1 for c in counts if lo <= c <= hi) for lo, hi in buckets
        }
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "speed": self.speed,
            "latency_weighted_f1": self.latency_weighted_f1,
            "p": self.p,
            "half_penalty_at_message": self.half_penalty_at,
            "confusion": self.confusion,
            "messages_until_alert": {
                "median": quantile(0.5),
                "p25": quantile(0.25),
                "p75": quantile(0.75),
                "p90": quantile(0.9),
                "histogram": histogram,
            },
        }


def early_detection(
    conversations: Sequence[Sequence[str]],
    labels: Sequence[int],
    score_windows: Callable[[list[str]], Sequence[float]],
    threshold: float,
    window: int = 10,
    smooth: int = 3,
    half_penalty_at: int = 90,
    tagger: StageTagger | None = None,
    max_messages: int | None = None,
) -> EarlyDetectionReport:
    """Replay each conversation one message at a time and note where the alarm first fires.

    At message t the model scores the window of the last `window` messages (joined by
    newlines, as in training) and `conversation_risk` combines that with stage progression;
    the alarm fires the first time risk ≥ `threshold`. Following Vogt et al. (ACL 2021),
    latency-weighted F1 = F1 × speed, speed = 1 − median latency penalty over true
    positives, with p set so the penalty is 0.5 at message `half_penalty_at`.
    """
    stages = tagger if tagger is not None else default_tagger()
    p = math.log(3.0) / max(1, half_penalty_at - 1)
    tp = fp = fn = tn = 0
    delays: list[int] = []
    for messages, label in zip(conversations, labels, strict=True):
        msgs = list(messages[:max_messages] if max_messages else messages)
        per_message_stages = [stages.stages(m) for m in msgs]
        scores: list[float] = []
        fired_at: int | None = None
        chunk = 32  # grows: most alarms fire early, so long transcripts are rarely scored whole
        t = 0
        while t < len(msgs) and fired_at is None:
            stop = min(len(msgs), t + chunk)
            windows = ["\n".join(msgs[max(0, i - window + 1) : i + 1]) for i in range(t, stop)]
            scores.extend(score_windows(windows))
            for i in range(t, stop):
                risk = conversation_risk(
                    scores[max(0, i - smooth + 1) : i + 1],
                    per_message_stages[max(0, i - window + 1) : i + 1],
                    smooth,
                    stages,
                )
                if risk >= threshold:
                    fired_at = i + 1
                    break
            t = stop
            chunk = min(BATCH, chunk * 2)
        if fired_at is not None and label == 1:
            tp += 1
            delays.append(fired_at)
        elif fired_at is not None:
            fp += 1
        elif label == 1:
            fn += 1
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = _fbeta(precision, recall, 1.0)
    speed = 1.0 - float(np.median([latency_penalty(k, p) for k in delays])) if delays else 0.0
    return EarlyDetectionReport(
        precision=precision,
        recall=recall,
        f1=f1,
        speed=speed,
        latency_weighted_f1=f1 * speed,
        p=p,
        half_penalty_at=half_penalty_at,
        messages_until_alert=delays,
        confusion={"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    )
