"""Measure the language model the way the product uses it: replay conversations message by message.

For each conversation the adult's lines go one at a time through `ConversationEvidence`, exactly as
the `grooming_language` detector does, and we note whether (and after how many adult messages) the
child-notice and the moderator thresholds are first crossed. Reported per source, never as one
average: evaluation-only real chat (NPS Chat, CONDA), the held-back split of each training source,
the held-back PJ transcripts (recall and how early) and the hand-written per-language probes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from groomguard.corpora import Conversation
from groomguard.evidence import ConversationEvidence, EvidenceSettings, with_second_opinion
from groomguard.scoring import latency_penalty
from groomguard.stages import StageTagger
from groomguard.text import fold_text, model_text

__all__ = [
    "ProductThresholds",
    "Replay",
    "format_report",
    "latency_weighted_f1",
    "product_report",
    "replay",
    "replay_many",
    "summarise",
]


@dataclass(frozen=True, slots=True)
class ProductThresholds:
    """The detector defaults a replay applies (taken from the shipped model's metadata)."""

    notice: float
    moderator: float
    min_messages: int = 3
    window: int = 10
    smooth: int = 3
    #: Replays stop after this many adult messages (long transcripts are rarely quiet that long).
    max_messages: int = 600


@dataclass(frozen=True, slots=True)
class Replay:
    """Where one conversation first crossed each threshold (adult-message counts, 1-based)."""

    notice_at: int | None
    alert_at: int | None
    peak: float
    messages: int
    informative: int
    unscored: dict[str, int]


ScoreFn = Callable[[list[str]], Sequence[float]]


def replay(
    lines: Sequence[str],
    score: ScoreFn,
    informative: Callable[[str], bool],
    tagger: StageTagger,
    thresholds: ProductThresholds,
    base_rate: float,
    raw_windows: bool = False,
    second: ScoreFn | None = None,
) -> Replay:
    """Run one conversation's adult lines through the detector's aggregation.

    `raw_windows` keeps each line's own words and joins a window by newlines (the multilingual
    scorer embeds line by line); otherwise windows are the English model's folded content words.
    `second` is the second-opinion model for windows the first scores ≥ SECOND_OPINION_FROM, as the
    detector asks it (`groomguard.evidence.with_second_opinion`).
    """
    settings = EvidenceSettings(
        window=thresholds.window,
        smooth=thresholds.smooth,
        notice_threshold=thresholds.notice,
        moderator_threshold=thresholds.moderator,
        escalation_stages=tagger.escalation,
        joiner="\n" if raw_windows else " ",
    )
    lines = list(lines[: thresholds.max_messages])
    plain_lines = [fold_text(line) for line in lines]
    folded = [" ".join(line.split()) for line in lines] if raw_windows else [model_text(t) for t in plain_lines]
    # Window texts depend only on the lines, so one pass collects them and one batch scores them all.
    probe = ConversationEvidence()
    windows: list[str | None] = []
    stages: list[tuple[str, ...]] = []
    raw: list[str] = []
    for text, plain, line in zip(folded, plain_lines, lines, strict=True):
        message_stages = tagger.stages(plain)
        stages.append(message_stages)
        useful = informative(plain if raw_windows else text)
        window = probe.add(text, useful, message_stages, settings, line=line)
        windows.append(window)
        if window is not None:
            raw.append(probe.raw_window())
    live = [w for w in windows if w is not None]
    first = list(score(live)) if live else []
    if second is not None:
        first = with_second_opinion(first, raw, second)
    scores = iter(first)
    evidence = ConversationEvidence()
    notice_at = alert_at = None
    peak = 0.0
    for i, (text, window) in enumerate(zip(folded, windows, strict=True), start=1):
        evidence.add(text, window is not None, stages[i - 1], settings)
        if window is not None:
            evidence.record(float(next(scores)), settings)
        if evidence.informative < thresholds.min_messages:
            continue  # the detector never judges fewer informative messages than this
        risk = evidence.risk(settings, base_rate)
        peak = max(peak, risk)
        if notice_at is None and risk >= thresholds.notice:
            notice_at = i
        if alert_at is None and risk >= thresholds.moderator:
            alert_at = i
    return Replay(notice_at, alert_at, peak, evidence.messages, evidence.informative, dict(evidence.unscored))


def replay_many(
    convs: Sequence[Conversation],
    score: ScoreFn,
    informative: Callable[[str], bool],
    tagger: StageTagger,
    thresholds: ProductThresholds,
    base_rate: float,
    router: Any | None = None,
) -> list[Replay]:
    """`replay` for each conversation (its scored speaker's lines only).

    A conversation marked with a non-English `lang` goes to the router's scorer and stage lexicon
    for that language; a language nobody covers is counted as not scored (no replay number).
    """
    out = []
    for c in convs:
        if c.lang == "en":
            second = router.second_opinion() if router is not None else None
            out.append(
                replay(
                    c.lines,
                    score,
                    informative,
                    tagger,
                    thresholds,
                    base_rate,
                    second=second.classify if second is not None else None,
                )
            )
        elif router is not None and router.covers(c.lang):
            scorer = router.classifier(c.lang)
            out.append(
                replay(
                    c.lines,
                    scorer.classify_folded,
                    scorer.informative,
                    router.tagger(c.lang),
                    thresholds,
                    base_rate,
                    raw_windows=True,
                )
            )
        else:
            out.append(Replay(None, None, 0.0, len(c.lines), 0, {c.lang: len(c.lines)}))
    return out


def _median(values: list[int]) -> float | None:
    return float(np.median(values)) if values else None


def summarise(convs: Sequence[Conversation], replays: Sequence[Replay], half_penalty_at: int = 90) -> dict[str, Any]:
    """Per-source shares notified / alerted; for positives also recall, latency and eSPD F1."""
    out: dict[str, Any] = {}
    by_source: dict[str, list[tuple[Conversation, Replay]]] = {}
    for conv, rep in zip(convs, replays, strict=True):
        by_source.setdefault(conv.source, []).append((conv, rep))
    p = math.log(3.0) / max(1, half_penalty_at - 1)
    for source, rows in sorted(by_source.items()):
        positives = [r for c, r in rows if c.label == 1]
        negatives = [r for c, r in rows if c.label == 0]
        entry: dict[str, Any] = {"conversations": len(rows)}
        if negatives:
            entry["negatives"] = len(negatives)
            entry["notice_rate"] = sum(r.notice_at is not None for r in negatives) / len(negatives)
            entry["alert_rate"] = sum(r.alert_at is not None for r in negatives) / len(negatives)
        if positives:
            notice = [r.notice_at for r in positives if r.notice_at is not None]
            alert = [r.alert_at for r in positives if r.alert_at is not None]
            entry["positives"] = len(positives)
            entry["notice_recall"] = len(notice) / len(positives)
            entry["alert_recall"] = len(alert) / len(positives)
            entry["median_messages_to_notice"] = _median(notice)
            entry["median_messages_to_alert"] = _median(alert)
            entry["speed_at_notice"] = (
                1.0 - float(np.median([latency_penalty(k, p) for k in notice])) if notice else 0.0
            )
        out[source] = entry
    return out


def latency_weighted_f1(
    positives: Sequence[Replay], negatives: Sequence[Replay], level: str = "notice", half_penalty_at: int = 90
) -> dict[str, float]:
    """eSPD (Vogt et al. 2021): F1 over conversations × speed (1 − median latency penalty of true positives)."""
    fired = (lambda r: r.notice_at) if level == "notice" else (lambda r: r.alert_at)
    tp_at = [fired(r) for r in positives if fired(r) is not None]
    tp = len(tp_at)
    fn = len(positives) - tp
    fp = sum(fired(r) is not None for r in negatives)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    p = math.log(3.0) / max(1, half_penalty_at - 1)
    speed = 1.0 - float(np.median([latency_penalty(int(k), p) for k in tp_at])) if tp_at else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "speed": speed, "latency_weighted_f1": f1 * speed}


def product_report(
    score: ScoreFn,
    informative: Callable[[str], bool],
    thresholds: ProductThresholds,
    base_rate: float,
    held_back: Sequence[Conversation],
    eval_only: Sequence[Conversation],
    probes: Sequence[Conversation],
    router: Any | None = None,
) -> dict[str, Any]:
    """Per-source notice/alert shares, PJ recall and latency, eSPD F1 and per-language probe results."""
    from groomguard.stages import default_tagger

    convs = [*held_back, *eval_only, *probes]
    replays = replay_many(convs, score, informative, default_tagger(), thresholds, base_rate, router)
    report = summarise(convs, replays)
    fit_negatives = [r for c, r in zip(convs, replays, strict=True) if c.label == 0 and c in held_back]
    pj = [r for c, r in zip(convs, replays, strict=True) if c.source == "pj"]
    if pj:
        report["espd_pj_vs_held_back_negatives"] = {
            "notice": latency_weighted_f1(pj, fit_negatives, "notice"),
            "alert": latency_weighted_f1(pj, fit_negatives, "alert"),
        }
    unscored = [c.lang for c, r in zip(convs, replays, strict=True) if r.unscored and not r.informative]
    if unscored:
        report["not_scored"] = {lang: unscored.count(lang) for lang in sorted(set(unscored))}
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain table: one line per source, shares as percentages."""
    rows = [f"{'source':<22}{'n':>6}{'notice':>9}{'alert':>9}{'recall':>9}{'msgs→notice':>13}{'msgs→alert':>12}"]
    for source, entry in report.items():
        if not isinstance(entry, dict) or "conversations" not in entry:
            continue

        def pct(key: str, e: dict[str, Any] = entry) -> str:
            return f"{100 * e[key]:.1f}%" if key in e else "-"

        def num(key: str, e: dict[str, Any] = entry) -> str:
            return f"{e[key]:.0f}" if e.get(key) is not None else "-"

        rows.append(
            f"{source:<22}{entry['conversations']:>6}{pct('notice_rate'):>9}{pct('alert_rate'):>9}"
            f"{pct('notice_recall'):>9}{num('median_messages_to_notice'):>13}{num('median_messages_to_alert'):>12}"
        )
    espd = report.get("espd_pj_vs_held_back_negatives")
    if espd:
        rows.append(
            "eSPD latency-weighted F1 (PJ vs held-back negatives): "
            f"notice {espd['notice']['latency_weighted_f1']:.3f}, alert {espd['alert']['latency_weighted_f1']:.3f}"
        )
    for lang, n in report.get("not_scored", {}).items():
        rows.append(f"not scored: {lang} ({n} conversations)")
    return "\n".join(rows)
