"""Train, calibrate, evaluate and export the grooming-language model (`python -m groomguard.models.train`).

Positives are the offender side of the PJ transcripts; negatives are real chat in the same informal
registers (SMS texting, IRC), tidy chat (chitchat-dataset) and hand-written hard negatives
(`models/synthetic/`). Windows of 1–20 lines are sampled so that both classes span the same
lengths, weighted so each class and each negative source has a fixed share at every length, and
split by transcript / session. Scores are calibrated (Platt) on the validation split at a 10 %
base rate. Evaluation replays whole conversations through the detector's own aggregation and
reports per source, with the evaluation-only corpora (NPS Chat, CONDA) never used for any choice.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from groomguard.classifier import Calibration
from groomguard.corpora import (
    DEFAULT_DATA_DIR,
    SEED,
    SYNTHETIC_DIR,
    Conversation,
    load_chitchat,
    load_negatives,
    load_pj,
    load_probes,
    load_synthetic,
    split_of,
)
from groomguard.evaluation import ProductThresholds, format_report, product_report
from groomguard.scoring import binary_metrics
from groomguard.stages import default_tagger
from groomguard.text import DEFAULT_MAX_CHARS, FOLD_VERSION, content_words, fold_text, model_text

__all__ = ["Conversation", "load_pj", "load_synthetic", "main", "split_of"]

log = logging.getLogger("groomguard.models.train")

MODELS_DIR: Final = Path(__file__).resolve().parent
WINDOW_SIZES: Final = (1, 2, 3, 5, 8, 12, 20)
#: The runtime detector scores windows of this many of the suspect's recent informative messages.
RUNTIME_WINDOW: Final = 10
#: Windows sampled per conversation per size, by source: caps how much one long transcript weighs.
PER_CONVERSATION: Final = {"pj": 10, "sms": 3, "irc": 1, "chitchat": 1, "synthetic_acb": 8, "synthetic_aaf": 8}
#: Chance that a window size is sampled at all for one conversation of a source (chitchat is large and easy).
SIZE_SAMPLING: Final = {"chitchat": 0.4}
#: Share of the negative class each source gets at every window size (renormalised over the sources
#: that have windows of that size). Real informal chat dominates; the hand-written sets are the hard cases.
NEGATIVE_SHARE: Final = {"sms": 0.2, "irc": 0.15, "chitchat": 0.15, "synthetic_acb": 0.2, "synthetic_aaf": 0.3}
#: Share of PJ windows (≥ 3 lines) that also carry decoy lines, as a two-sided segment would.
MIXED_SHARE: Final = 0.35
#: Recombined windows per hand-written conversation (lines of other conversations of the same kind,
#: same split): many more hard-negative windows without any line crossing a split.
RECOMBINED_PER_CONV: Final = 12
#: Grooming among adult→child conversations is rare; calibration and thresholds assume this prior.
BASE_RATE: Final = 0.10
C_GRID: Final = (2.0, 8.0)
VERSION: Final = "grooming-tfidf-lr-2"


@dataclass(slots=True)
class Dataset:
    """Model-ready window texts, labels, weights, source and line count of each, for one split."""

    texts: list[str]
    labels: np.ndarray
    weights: np.ndarray
    sources: list[str]
    sizes: np.ndarray


def _mixed(lines: Sequence[str], other: Sequence[str], start: int, k: int) -> list[str]:
    # The PJ sides are not interleaved in the source; approximate a two-sided segment by taking the
    # decoy lines at the same relative position and alternating (marked approximate in the card).
    j = int(start * len(other) / max(1, len(lines)))
    merged: list[str] = []
    for mine, theirs in zip(lines[start : start + k], list(other[j : j + k]) + [""] * k, strict=False):
        merged.append(mine)
        if theirs:
            merged.append(theirs)
    return merged[:k]


def windows_of(conv: Conversation, per_size: int, rng: random.Random) -> list[tuple[int, str]]:
    """Sampled windows of consecutive lines as (size, model text); uninformative ones are dropped.

    A positive window must also show a grooming stage other than flattery (weak labelling with
    the stage lexicons): most PJ lines are ordinary chit-chat, and a window of only that taught the
    model "chats socially" = grooming, which flags every chat room.
    """
    out = []
    tagger = default_tagger()
    n = len(conv.lines)
    for k in WINDOW_SIZES:
        if n < k or rng.random() > SIZE_SAMPLING.get(conv.source, 1.0):
            continue
        starts = list(range(0, n - k + 1))
        rng.shuffle(starts)
        for start in starts[:per_size]:
            if conv.label == 1 and k >= 3 and conv.other and rng.random() < MIXED_SHARE:
                chunk = _mixed(conv.lines, conv.other, start, k)
            else:
                chunk = list(conv.lines[start : start + k])
            folded = fold_text("\n".join(chunk))
            text = model_text(folded)
            if not content_words(text):
                continue
            if conv.label == 1 and not set(tagger.stages(folded)) - {"rapport"}:
                continue
            out.append((k, text))
    return out


def _recombined(convs: Sequence[Conversation], rng: random.Random) -> list[tuple[str, int, str]]:
    out = []
    for source in ("synthetic_acb", "synthetic_aaf"):
        pool = [line for c in convs if c.source == source for line in c.lines]
        n = sum(1 for c in convs if c.source == source)
        for _ in range(RECOMBINED_PER_CONV * n if len(pool) >= 10 else 0):
            k = rng.choice((2, 3, 5, 8))
            text = model_text(fold_text("\n".join(rng.sample(pool, k))))
            if content_words(text):
                out.append((source, k, text))
    return out


def build_split(convs: Sequence[Conversation], seed: int) -> Dataset:
    """Windows for every conversation of a split, weighted so classes and sources share each length."""
    rng = random.Random(seed)
    rows: list[tuple[str, int, int, str]] = []  # source, label, size, text
    for conv in convs:
        for k, text in windows_of(conv, PER_CONVERSATION[conv.source], rng):
            rows.append((conv.source, conv.label, k, text))
    rows += [(source, 0, k, text) for source, k, text in _recombined(convs, rng)]
    counts: dict[tuple[str, int], int] = {}
    for source, _, k, _ in rows:
        counts[(source, k)] = counts.get((source, k), 0) + 1
    weights = []
    for source, label, k, _ in rows:
        if label == 1:
            weights.append(1.0 / counts[(source, k)])
            continue
        present = {s: share for s, share in NEGATIVE_SHARE.items() if counts.get((s, k))}
        weights.append(present[source] / sum(present.values()) / counts[(source, k)])
    w = np.array(weights, dtype=np.float64)
    w *= len(w) / w.sum()
    return Dataset(
        [r[3] for r in rows],
        np.array([r[1] for r in rows], dtype=np.int64),
        w,
        [r[0] for r in rows],
        np.array([r[2] for r in rows], dtype=np.int64),
    )


def at_base_rate(ds: Dataset, base_rate: float = BASE_RATE) -> np.ndarray:
    """Weights rescaled so positives carry `base_rate` of the total (a realistic prior)."""
    w = ds.weights.copy()
    pos = ds.labels == 1
    w[pos] *= base_rate / w[pos].sum()
    w[~pos] *= (1.0 - base_rate) / w[~pos].sum()
    return w * len(w)


def weighted_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F0.5 with sample weights (the base-rate view)."""
    pred = scores >= threshold
    tp = float(weights[pred & (labels == 1)].sum())
    fp = float(weights[pred & (labels == 0)].sum())
    fn = float(weights[~pred & (labels == 1)].sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f05 = 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "precision": precision, "recall": recall, "f0_5": f05}


# ---------------------------------------------------------------------- export


def export_onnx(pipeline: Any, path: Path) -> None:
    """Convert the fitted pipeline to one ONNX graph taking a [N, 1] string tensor."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    features = pipeline.named_steps["features"]
    char = dict(features.transformer_list)["char"]
    word = dict(features.transformer_list)["word"]
    options = {
        id(char): {"locale": "C"},
        id(word): {"locale": "C", "tokenexp": r"[a-z0-9_]+"},
        id(pipeline.named_steps["clf"]): {"zipmap": False},
    }
    onx = convert_sklearn(
        pipeline,
        initial_types=[("text", StringTensorType([None, 1]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onx = fast_graph(onx)
    onx.doc_string = f"GroomGuard grooming-language model {VERSION}"
    path.write_bytes(onx.SerializeToString())


def fast_graph(onx: Any) -> Any:
    """Rewrite skl2onnx's TF-IDF + logistic-regression graph into the same function, faster.

    skl2onnx emits TF → Mul(idf) → ai.onnx.ml Normalizer → Concat → LinearClassifier, all on
    dense [N, n_features] tensors; with 100k features the Normalizer alone cost ~400 µs a row. Because
    the head is linear, w · (x / ‖x‖) = (w · x) / ‖x‖ for each TF-IDF block, so the graph
    becomes: TfIdfVectorizer in TFIDF mode (idf folded into its weights) → an L2 norm and a
    one-column MatMul per block → Div → Add → Sigmoid. Same probabilities (checked by the
    parity test in `main`), several times faster, and no large intermediate copies.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = onx.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    by_output = {o: n for n in graph.node for o in n.output}
    head = next(n for n in graph.node if n.op_type == "LinearClassifier")
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    coefficients = np.asarray(attrs["coefficients"], dtype=np.float64)
    n_features = coefficients.size // 2
    weights = coefficients[n_features:]  # class-1 row; class 0 is its negation
    intercept = float(np.asarray(attrs["intercepts"])[1])
    concat = by_output[head.input[0]]

    keep: list[Any] = []
    inits: list[Any] = []
    partial: list[str] = []
    offset = 0
    for k, block in enumerate(concat.input):
        normalizer = by_output[block]
        mul = by_output[normalizer.input[0]]
        tfidf = by_output[next(i for i in mul.input if i not in consts)]
        idf = consts[next(i for i in mul.input if i in consts)].astype(np.float64).ravel()
        # Copy the tokenizer chain feeding this vectoriser unchanged.
        chain = []
        node = by_output[tfidf.input[0]]
        while True:
            chain.append(node)
            if node.input[0] == graph.input[0].name:
                break
            node = by_output[node.input[0]]
        keep.extend(reversed(chain))
        t_attrs = {a.name: helper.get_attribute_value(a) for a in tfidf.attribute}
        indexes = list(t_attrs["ngram_indexes"])
        t_attrs["mode"] = "TFIDF"
        t_attrs["weights"] = [float(idf[i]) for i in indexes]
        dense = f"tfidf{k}"
        keep.append(helper.make_node("TfIdfVectorizer", list(tfidf.input), [dense], name=f"TfIdf{k}", **t_attrs))
        width = idf.size
        w = weights[offset : offset + width].astype(np.float32).reshape(-1, 1)
        offset += width
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        # ReduceL2 is several times slower in onnxruntime than Mul + ReduceSum on wide rows.
        keep.append(helper.make_node("Mul", [dense, dense], [f"square{k}"]))
        keep.append(helper.make_node("ReduceSum", [f"square{k}", "axis1"], [f"sumsq{k}"], keepdims=1))
        keep.append(helper.make_node("Sqrt", [f"sumsq{k}"], [f"norm{k}"]))
        keep.append(helper.make_node("Max", [f"norm{k}", "eps"], [f"safe_norm{k}"]))
        keep.append(helper.make_node("MatMul", [dense, f"w{k}"], [f"dot{k}"]))
        keep.append(helper.make_node("Div", [f"dot{k}", f"safe_norm{k}"], [f"part{k}"]))
        partial.append(f"part{k}")
    if offset != n_features:
        raise ValueError(f"feature blocks cover {offset} of {n_features} coefficients")
    inits += [
        numpy_helper.from_array(np.array([1e-12], dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([[intercept]], dtype=np.float32), "intercept"),
        numpy_helper.from_array(np.array([[1.0]], dtype=np.float32), "one"),
    ]
    keep.append(helper.make_node("Sum", [*partial, "intercept"], ["logit"]))
    keep.append(helper.make_node("Sigmoid", ["logit"], ["p1"]))
    keep.append(helper.make_node("Sub", ["one", "p1"], ["p0"]))
    keep.append(helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1))
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    new_graph = helper.make_graph(keep, "groomguard_grooming", [graph.input[0]], [out], inits)
    model = helper.make_model(
        new_graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="groomguard-models-train",
    )
    model.ir_version = onx.ir_version
    onnx.checker.check_model(model)
    return model


def onnx_scores(path: Path, texts: Sequence[str]) -> np.ndarray:
    """Score already-normalised texts with the exported graph (parity check)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = []
    for start in range(0, len(texts), 512):
        batch = np.array(texts[start : start + 512], dtype=object).reshape(-1, 1)
        out.append(session.run(["probabilities"], {"text": batch})[0][:, 1])
    return np.concatenate(out) if out else np.zeros(0)


# ------------------------------------------------------------------------ main


#: Feature budget per block: every TF-IDF row is dense in the ONNX graph, so size is speed and memory.
WORD_FEATURES: Final = 20_000
CHAR_FEATURES: Final = 20_000


def make_pipeline(c: float, word_vocabulary: dict[str, int] | None = None) -> Any:
    """Word 1–2-gram + character 2–4-gram TF-IDF into logistic regression.

    Choices forced by skl2onnx: analyzer "char" (not char_wb), no sublinear_tf, and a word vocabulary
    in which every word of a kept bigram is kept too (onnxruntime's TfIdfVectorizer mis-scores a
    bigram whose unigram is missing; `closed_word_vocabulary` builds one). Text arrives already
    folded to content words (`groomguard.text.model_text`).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    word = TfidfVectorizer(
        analyzer="word",
        token_pattern=r"[a-z0-9_]+",
        ngram_range=(1, 2),
        min_df=3,
        max_features=None if word_vocabulary else WORD_FEATURES,
        vocabulary=word_vocabulary,
        lowercase=False,
        dtype=np.float32,
    )
    char = TfidfVectorizer(
        analyzer="char", ngram_range=(2, 4), min_df=3, max_features=CHAR_FEATURES, lowercase=False, dtype=np.float32
    )
    return Pipeline(
        [
            ("features", FeatureUnion([("word", word), ("char", char)])),
            ("clf", LogisticRegression(C=c, max_iter=3000, solver="liblinear", random_state=SEED)),
        ]
    )


def closed_word_vocabulary(texts: Sequence[str]) -> dict[str, int]:
    """The WORD_FEATURES most frequent word 1–2-grams plus every word those bigrams contain."""
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(
        token_pattern=r"[a-z0-9_]+", ngram_range=(1, 2), min_df=3, max_features=WORD_FEATURES, lowercase=False
    ).fit(texts)
    terms = set(counts.vocabulary_)
    terms |= {w for t in list(terms) if " " in t for w in t.split(" ")}
    return {t: i for i, t in enumerate(sorted(terms))}


def vocabulary_of(pipeline: Any) -> list[str]:
    """The single words the model has a feature for (the run-time informativeness gate reads these)."""
    word = dict(pipeline.named_steps["features"].transformer_list)["word"]
    return sorted(t for t in word.vocabulary_ if " " not in t)


class Scorer:
    """Calibrated, gated scoring with the sklearn pipeline: the same function the ONNX graph serves."""

    def __init__(self, pipeline: Any, calibration: Calibration, vocabulary: set[str]) -> None:
        self.pipeline, self.calibration, self.vocabulary = pipeline, calibration, vocabulary

    def informative(self, text: str) -> bool:
        return any(w in self.vocabulary for w in content_words(text))

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.predict_proba(list(texts))[:, 1] if texts else np.zeros(0)

    def __call__(self, texts: list[str]) -> list[float]:
        out = np.full(len(texts), BASE_RATE)
        live = [i for i, t in enumerate(texts) if self.informative(t)]
        if live:
            out[live] = self.calibration(self.raw([texts[i] for i in live]))
        return out.tolist()


def platt(raw: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> Calibration:
    """Platt scaling on validation scores weighted to the base rate: p = sigmoid(a·logit(raw) + b)."""
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(raw, 1e-7, 1 - 1e-7)
    z = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(z, labels, sample_weight=weights)
    return Calibration(float(fit.coef_[0][0]), float(fit.intercept_[0]), BASE_RATE)


def best_threshold(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """The threshold with the best base-rate-weighted F0.5 (precision weighs double)."""
    grid = np.unique(np.round(scores, 3))
    grid = grid[(grid > 0.0) & (grid < 1.0)]
    best = max(grid, key=lambda t: weighted_metrics(labels, scores, weights, float(t))["f0_5"])
    return float(best)


def precision_threshold(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, target: float) -> float:
    """The lowest threshold whose base-rate-weighted precision reaches `target`."""
    for t in np.linspace(0.05, 0.99, 189):
        if weighted_metrics(labels, scores, weights, float(t))["precision"] >= target:
            return round(float(t), 3)
    return 0.99


def per_source(ds: Dataset, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Window flag rate per source (hard negatives visible apart from easy ones)."""
    out: dict[str, Any] = {}
    for source in sorted(set(ds.sources)):
        idx = np.array([i for i, s in enumerate(ds.sources) if s == source])
        flagged = int((scores[idx] >= threshold).sum())
        out[source] = {"windows": len(idx), "flag_rate": flagged / len(idx)}
    return out


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else round(obj, 4)
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Build datasets, fit, calibrate, choose thresholds on validation, evaluate once, export."""
    parser = argparse.ArgumentParser(prog="python -m groomguard.models.train", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="../shared/data")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where grooming.onnx goes")
    parser.add_argument("--no-eval", action="store_true", help="skip the conversation replays")
    parser.add_argument("--save-pipeline", type=Path, help="also pickle the fitted scikit-learn pipeline here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    random.seed(SEED)
    np.random.seed(SEED)
    if not (args.data / "pj_transcripts.jsonl").is_file():
        log.error("training data %s not found (pass --data)", args.data / "pj_transcripts.jsonl")
        return 2

    convs = load_pj(args.data / "pj_transcripts.jsonl")
    convs += load_negatives(args.data, "sms") + load_negatives(args.data, "irc")
    convs += load_chitchat() + load_synthetic(SYNTHETIC_DIR)
    parts: dict[str, list[Conversation]] = {"train": [], "val": [], "test": []}
    for conv in convs:
        parts[split_of(conv.group or conv.id)].append(conv)
    sources = sorted({c.source for c in convs})
    split_counts = {name: {s: sum(1 for c in cs if c.source == s) for s in sources} for name, cs in parts.items()}
    log.info("conversations per split: %s", split_counts)
    data = {name: build_split(cs, SEED + i) for i, (name, cs) in enumerate(parts.items())}
    window_counts = {name: {"windows": len(d.texts), "positive": int(d.labels.sum())} for name, d in data.items()}
    log.info("windows per split: %s", window_counts)
    train, val, test = data["train"], data["val"], data["test"]
    val_w = at_base_rate(val)

    grid: dict[float, tuple[float, Any, np.ndarray]] = {}
    word_vocabulary = closed_word_vocabulary(train.texts)
    for c in C_GRID:
        t0 = time.monotonic()
        candidate = make_pipeline(c, word_vocabulary)
        candidate.fit(train.texts, train.labels, clf__sample_weight=train.weights)
        raw = candidate.predict_proba(val.texts)[:, 1]
        ll = -float(
            np.average(val.labels * np.log(raw + 1e-9) + (1 - val.labels) * np.log(1 - raw + 1e-9), weights=val.weights)
        )
        grid[c] = (ll, candidate, raw)
        log.info("C=%g: validation log loss %.4f (fit %.0fs)", c, ll, time.monotonic() - t0)
    best_c = min(grid, key=lambda c: grid[c][0])
    _, pipeline, val_raw = grid[best_c]
    calibration = platt(val_raw, val.labels, val_w)
    vocabulary = vocabulary_of(pipeline)
    scorer = Scorer(pipeline, calibration, set(vocabulary))
    val_p = calibration(val_raw)
    threshold = best_threshold(val.labels, val_p, val_w)
    moderator = max(threshold, precision_threshold(val.labels, val_p, val_w, 0.95))
    log.info("C=%g threshold %.3f (notice) moderator %.3f", best_c, threshold, moderator)

    test_p = calibration(scorer.raw(test.texts))
    test_w = at_base_rate(test)
    results: dict[str, Any] = {
        "c": best_c,
        "c_grid_val_log_loss": {str(c): grid[c][0] for c in C_GRID},
        "val_at_base_rate": weighted_metrics(val.labels, val_p, val_w, threshold),
        "test_at_base_rate": weighted_metrics(test.labels, test_p, test_w, threshold),
        "test_unweighted": binary_metrics(test.labels.tolist(), test_p.tolist(), threshold),
        "test_by_source": per_source(test, test_p, threshold),
    }
    log.info("in-distribution test at base rate: %s", results["test_at_base_rate"])

    thresholds = ProductThresholds(notice=threshold, moderator=moderator, window=RUNTIME_WINDOW)
    if not args.no_eval:
        from groomguard.language_routing import default_router

        eval_only = load_negatives(args.data, "nps") + load_negatives(args.data, "conda")
        product = product_report(
            scorer, scorer.informative, thresholds, BASE_RATE, parts["test"], eval_only, load_probes(), default_router()
        )
        log.info("product view (notice / alert shares per source):\n%s", format_report(product))
        results["product"] = product
        for source, entry in product.items():
            log.info("product %s: %s", source, json.dumps(_round(entry)))

    args.out.mkdir(parents=True, exist_ok=True)
    if args.save_pipeline:
        import pickle

        args.save_pipeline.write_bytes(pickle.dumps((pipeline, calibration, vocabulary)))
    onnx_path = args.out / "grooming.onnx"
    export_onnx(pipeline, onnx_path)
    (args.out / "grooming.vocab").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    parity = val.texts[:3000]
    diff = float(np.max(np.abs(onnx_scores(onnx_path, parity) - val_raw[:3000])))
    log.info("ONNX parity on %d validation windows: max |diff| = %.2e", len(parity), diff)
    if diff > 1e-3:
        log.error("ONNX export disagrees with sklearn (max diff %.4f): not shipping", diff)
        return 1
    elapsed = time.monotonic() - started
    metadata = {
        "version": VERSION,
        "threshold": threshold,
        "notice_threshold": threshold,
        "moderator_threshold": moderator,
        "approach": "word 1-2-gram + char 2-4-gram TF-IDF on filler-free folded text, logistic regression, Platt calibration",
        "input": {"name": "text", "type": "string", "shape": [None, 1]},
        "output": {"name": "probabilities", "column": 1, "calibrated": False},
        "calibration": {"method": "platt", "base_rate": BASE_RATE, "a": calibration.a, "b": calibration.b},
        "window": RUNTIME_WINDOW,
        "window_joiner": " ",
        "normalization": {
            "module": "groomguard.text.model_text(groomguard.text.fold_text(...))",
            "version": FOLD_VERSION,
            "max_chars": DEFAULT_MAX_CHARS,
        },
        "languages": ["en"],
        "seed": SEED,
        "splits": split_counts,
        "windows": window_counts,
        "onnx_parity_max_abs_diff": diff,
        "onnx_bytes": onnx_path.stat().st_size,
        "train_seconds": round(elapsed, 1),
        "rebuild": "python -m groomguard.models.train",
        "results": _round(results),
    }
    (args.out / "grooming.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes) and grooming.json in %.0fs", onnx_path, onnx_path.stat().st_size, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
