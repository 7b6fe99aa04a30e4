"""Train, compare, evaluate and export the grooming-language model (`python -m models.train`)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from bot.scoring import binary_metrics, early_detection
from bot.text import DEFAULT_MAX_CHARS, NORMALIZATION_VERSION, normalize_text

log = logging.getLogger("models.train")

SEED: Final = 20_260_514
MODELS_DIR: Final = Path(__file__).resolve().parent
DEFAULT_DATA: Final = Path(__file__).resolve().parents[2] / "shared/data/pj_transcripts.jsonl"
SYNTHETIC_DIR: Final = MODELS_DIR / "synthetic"
WINDOW_SIZES: Final = (1, 3, 5, 10)
#: The runtime detector scores windows of this many of the suspect's recent messages.
RUNTIME_WINDOW: Final = 10
#: Windows sampled per conversation per size: caps how much one long transcript weighs.
POS_PER_SIZE: Final = {1: 12, 3: 16, 5: 16, 10: 16}
NEG_PER_SIZE: Final = {1: 3, 3: 3, 5: 3, 10: 3}
SYNTHETIC_WEIGHT: Final = 12.0
RECOMBINED_PER_CONV: Final = 20
C_GRID: Final = (1.0, 4.0, 16.0)
#: Conversation-risk thresholds replayed for early detection besides the window threshold:
#: the detector's default child-notice and moderator thresholds.
EARLY_THRESHOLDS: Final = (0.8, 0.9)
SPLITS: Final = (("train", 0.70), ("val", 0.15), ("test", 0.15))
VERSION: Final = "grooming-tfidf-lr-1"


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation's lines from the speaker we score, plus the other side's lines."""

    id: str
    source: str  # pj | chitchat | synthetic_acb | synthetic_aaf
    label: int
    lines: tuple[str, ...]
    other: tuple[str, ...] = ()
    interleaved: bool = False


# ------------------------------------------------------------------------ data


def load_pj(path: Path) -> list[Conversation]:
    """Perverted Justice transcripts: the offender's lines are the positive speaker."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            item = json.loads(raw)
            lines = tuple(str(x) for x in item.get("offender", []) if str(x).strip())
            decoy = tuple(str(x) for x in item.get("decoy", []) if str(x).strip())
            if len(lines) >= 3:
                out.append(Conversation(str(item["id"]), "pj", 1, lines, decoy, False))
    return out


def load_chitchat() -> list[Conversation]:
    """Ordinary open-domain chat (chitchat-dataset): the first sender is the scored speaker."""
    import chitchat_dataset

    out = []
    for key, conv in chitchat_dataset.Dataset().items():
        messages = [m for turn in conv["messages"] for m in turn]
        if not messages:
            continue
        first = messages[0]["sender"]
        mine = tuple(m["text"] for m in messages if m["sender"] == first and m["text"].strip())
        both = tuple(m["text"] for m in messages if m["text"].strip())
        if mine:
            out.append(Conversation(f"cc-{key}", "chitchat", 0, mine, both, True))
    return out


def load_synthetic(directory: Path) -> list[Conversation]:
    """Hand-written hard negatives: benign adult→child chat and adult↔adult flirting."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        source = "synthetic_acb" if "child" in path.stem else "synthetic_aaf"
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                item = json.loads(raw)
                out.append(Conversation(item["id"], source, 0, tuple(item["lines"])))
    return out


def split_of(conversation_id: str) -> str:
    """Deterministic split by conversation id, so no conversation straddles two splits."""
    digest = hashlib.sha256(f"{SEED}:{conversation_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, fraction in SPLITS:
        cumulative += fraction
        if u < cumulative:
            return name
    return SPLITS[-1][0]


# --------------------------------------------------------------------- windows


def _mixed(lines: Sequence[str], other: Sequence[str], start: int, k: int) -> list[str]:
    # The PJ sides are not interleaved in the source; approximate a segment by taking the
    # decoy lines at the same relative position and alternating. Marked as approximate in
    # the model card.
    j = int(start * len(other) / max(1, len(lines)))
    theirs = list(other[j : j + k])
    mine = list(lines[start : start + k])
    merged: list[str] = []
    for i in range(max(len(mine), len(theirs))):
        if i < len(mine):
            merged.append(mine[i])
        if i < len(theirs):
            merged.append(theirs[i])
    return merged[: max(k, 2)]


def windows_of(
    conv: Conversation, per_size: dict[int, int], rng: random.Random, mixed_share: float = 0.25
) -> list[str]:
    """Sampled windows of consecutive lines (joined by newlines), of several sizes."""
    texts = []
    n = len(conv.lines)
    for k in WINDOW_SIZES:
        # Short conversations still give short windows, but never a "10-line" duplicate.
        if n < k and k > 1 and (k == WINDOW_SIZES[-1] or n < 2):
            continue
        span = min(k, n)
        starts = list(range(0, n - span + 1))
        rng.shuffle(starts)
        for start in starts[: per_size[k]]:
            if k > 1 and conv.other and rng.random() < mixed_share:
                if conv.interleaved:
                    j = int(start * len(conv.other) / max(1, n))
                    chunk = list(conv.other[j : j + span])
                else:
                    chunk = _mixed(conv.lines, conv.other, start, span)
            else:
                chunk = list(conv.lines[start : start + span])
            texts.append("\n".join(chunk))
    return texts


_CHATSPEAK: Final = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "youre": "ur",
    "are": "r",
    "please": "pls",
    "okay": "ok",
    "because": "cuz",
    "thanks": "thx",
    "tonight": "2nite",
    "later": "l8r",
    "going to": "gonna",
    "want to": "wanna",
    "got to": "gotta",
    "what": "wat",
    "really": "rly",
    "people": "ppl",
    "though": "tho",
    "probably": "prob",
    "with": "w",
    "message": "msg",
    "i'm": "im",
    "don't": "dont",
    "can't": "cant",
    "that's": "thats",
    "it's": "its",
}
_FILLERS: Final = ("lol", "haha", "lmao", "hehe", ":)", ":P", "omg", "hmm", "brb")


def chatspeak(text: str, rng: random.Random) -> str:
    """Rewrite a benign line in instant-messenger style (u, ur, lol, no capitals).

    Why: the positives are 2000s IM chat and chitchat is tidy crowd-worker English, so a
    model could learn "writes like AIM" instead of "grooms". Styling half the negatives the
    same way takes that shortcut away.
    """
    words = text.lower().rstrip(".!").replace(",", "").split()
    out = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in _CHATSPEAK and rng.random() < 0.7:
            out.append(_CHATSPEAK[pair])
            i += 2
            continue
        w = words[i]
        out.append(_CHATSPEAK[w] if w in _CHATSPEAK and rng.random() < 0.7 else w)
        i += 1
    if rng.random() < 0.3:
        out.append(rng.choice(_FILLERS))
    if rng.random() < 0.1 and out:
        out[0] = rng.choice(("hey", "hi", "yo", "heya")) + " " + out[0]
    return " ".join(out)


@dataclass(slots=True)
class Dataset:
    """Normalised window texts, labels, weights and the source of each, for one split."""

    texts: list[str]
    labels: np.ndarray
    weights: np.ndarray
    sources: list[str]
    #: Lines in each window (normalisation folds the newlines away, so count before it).
    sizes: np.ndarray


def build_split(convs: Sequence[Conversation], seed: int) -> Dataset:
    """Windows for every conversation in a split, normalised exactly as at run time."""
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    sources: list[str] = []
    sizes: list[int] = []
    for conv in convs:
        if conv.label == 1:
            chunk = windows_of(conv, POS_PER_SIZE, rng)
            weight = 1.0
        elif conv.source == "chitchat":
            chunk = windows_of(conv, NEG_PER_SIZE, rng)
            weight = 1.0
        else:
            chunk = windows_of(conv, {k: 50 for k in WINDOW_SIZES}, rng, mixed_share=0.0)
            weight = SYNTHETIC_WEIGHT
        for text in chunk:
            if conv.label == 0 and rng.random() < 0.5:
                text = "\n".join(chatspeak(line, rng) for line in text.split("\n"))
            folded = normalize_text(text)
            if folded:
                texts.append(folded)
                labels.append(conv.label)
                weights.append(weight)
                sources.append(conv.source)
                sizes.append(text.count("\n") + 1)
    # The hand-written hard negatives are few; recombine lines across the conversations of
    # one kind *within this split* so the model sees many more adult-only sexual windows and
    # adult-to-child benign windows without any line crossing a split boundary.
    for source in ("synthetic_acb", "synthetic_aaf"):
        pool = [line for conv in convs if conv.source == source for line in conv.lines]
        n_convs = sum(1 for conv in convs if conv.source == source)
        for _ in range(RECOMBINED_PER_CONV * n_convs if len(pool) >= 10 else 0):
            k = rng.randint(2, 8)
            lines = [chatspeak(x, rng) if rng.random() < 0.3 else x for x in rng.sample(pool, k)]
            folded = normalize_text("\n".join(lines))
            texts.append(folded)
            labels.append(0)
            weights.append(SYNTHETIC_WEIGHT / 2)
            sources.append(source)
            sizes.append(k)
    return Dataset(texts, np.array(labels), np.array(weights), sources, np.array(sizes))


# ------------------------------------------------------------------ approaches


def make_tfidf_pipeline(c: float = 4.0) -> Any:
    """Word 1–2-gram + character 2–5-gram TF-IDF into logistic regression.

    Choices forced by skl2onnx: analyzer "char" (not char_wb), no sublinear_tf; text
    arrives already lower-cased by bot.text, so ONNX's ASCII-only lower-casing is moot.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    word = TfidfVectorizer(
        analyzer="word",
        token_pattern=r"[a-z0-9_']+",
        ngram_range=(1, 2),
        min_df=3,
        max_features=25_000,
        lowercase=False,
        dtype=np.float32,
    )
    char = TfidfVectorizer(
        analyzer="char",
        ngram_range=(2, 5),
        min_df=3,
        max_features=35_000,
        lowercase=False,
        dtype=np.float32,
    )
    return Pipeline(
        [
            ("features", FeatureUnion([("word", word), ("char", char)])),
            (
                "clf",
                LogisticRegression(C=c, class_weight="balanced", max_iter=3000, solver="liblinear", random_state=SEED),
            ),
        ]
    )


class StaticEmbeddingModel:
    """Approach B: tokenlearn-static-model (Model2Vec-style, 64-d int8) + logistic regression."""

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000, random_state=SEED)

    @staticmethod
    def embed(texts: Sequence[str]) -> np.ndarray:
        from static_model import get_embeddings

        return np.asarray(get_embeddings(list(texts)), dtype=np.float32)

    def fit(self, texts: Sequence[str], labels: np.ndarray, weights: np.ndarray) -> None:
        self.clf.fit(self.embed(texts), labels, sample_weight=weights)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.clf.predict_proba(self.embed(texts))


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that maximises F0.5 on validation (precision weighs double)."""
    best, best_f = 0.5, -1.0
    for t in np.linspace(0.05, 0.99, 95):
        f = binary_metrics(labels.tolist(), scores.tolist(), float(t))["f0_5"]
        if f > best_f:
            best, best_f = float(t), f
    return round(best, 3)


def per_source(ds: Dataset, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Flag rate per source, so hard negatives are visible apart from easy ones."""
    out: dict[str, Any] = {}
    for source in sorted(set(ds.sources)):
        idx = [i for i, s in enumerate(ds.sources) if s == source]
        flagged = int((scores[idx] >= threshold).sum())
        out[source] = {"windows": len(idx), "flagged": flagged, "flag_rate": flagged / len(idx) if idx else 0.0}
    return out


def by_window_size(ds: Dataset, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics for single lines vs longer windows (lines counted by newlines)."""
    sizes = ds.sizes
    out = {}
    for lo, hi, name in ((1, 1, "1 line"), (2, 5, "2-5 lines"), (6, 99, "6-10 lines")):
        mask = (sizes >= lo) & (sizes <= hi)
        if mask.any():
            out[name] = binary_metrics(ds.labels[mask].tolist(), scores[mask].tolist(), threshold)
    return out


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
        id(word): {"locale": "C", "tokenexp": r"[a-z0-9_']+"},
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


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else round(obj, 4)
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    return obj


def _early(
    convs: Sequence[Conversation], score: Callable[[list[str]], Sequence[float]], threshold: float
) -> dict[str, Any]:
    report = early_detection(
        [[normalize_text(line) for line in c.lines] for c in convs],
        [c.label for c in convs],
        score,
        threshold,
        window=RUNTIME_WINDOW,
    )
    return report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    """Build datasets, fit both approaches, pick by validation F0.5, evaluate on test, export."""
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="pj_transcripts.jsonl")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where grooming.onnx goes")
    parser.add_argument(
        "--skip-embedding", action="store_true", help="do not train the compared static-embedding approach"
    )
    parser.add_argument("--no-early", action="store_true", help="skip early-detection replay")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    random.seed(SEED)
    np.random.seed(SEED)

    if not args.data.is_file():
        log.error("training data %s not found (pass --data)", args.data)
        return 2
    convs = load_pj(args.data) + load_chitchat() + load_synthetic(SYNTHETIC_DIR)
    parts: dict[str, list[Conversation]] = {name: [] for name, _ in SPLITS}
    for conv in convs:
        parts[split_of(conv.id)].append(conv)
    split_counts = {
        name: {
            src: sum(1 for c in cs if c.source == src) for src in ("pj", "chitchat", "synthetic_acb", "synthetic_aaf")
        }
        for name, cs in parts.items()
    }
    log.info("conversations per split: %s", split_counts)
    data = {name: build_split(cs, SEED + i) for i, (name, cs) in enumerate(parts.items())}
    window_counts = {name: {"windows": len(d.texts), "positive": int(d.labels.sum())} for name, d in data.items()}
    log.info("windows per split: %s", window_counts)
    train, val, test = data["train"], data["val"], data["test"]

    results: dict[str, Any] = {}
    # Approach A: TF-IDF n-grams + logistic regression.
    t0 = time.monotonic()
    # Regularisation strength chosen on validation F0.5 (at each C's own best threshold).
    grid: dict[float, tuple[float, Any, np.ndarray, float]] = {}
    for c in C_GRID:
        candidate = make_tfidf_pipeline(c)
        candidate.fit(train.texts, train.labels, clf__sample_weight=train.weights)
        scores = candidate.predict_proba(val.texts)[:, 1]
        thr = best_threshold(val.labels, scores)
        f05 = binary_metrics(val.labels.tolist(), scores.tolist(), thr)["f0_5"]
        grid[c] = (f05, candidate, scores, thr)
        log.info("tfidf_lr C=%g: val F0.5 %.4f at threshold %.3f", c, f05, thr)
    best_c = max(grid, key=lambda c: grid[c][0])
    _, tfidf, val_a, thr_a = grid[best_c]
    fit_a = time.monotonic() - t0
    test_a = tfidf.predict_proba(test.texts)[:, 1]
    results["tfidf_lr"] = {
        "fit_seconds": fit_a,
        "c_grid_val_f0_5": {str(c): grid[c][0] for c in C_GRID},
        "c": best_c,
        "threshold": thr_a,
        "val": binary_metrics(val.labels.tolist(), val_a.tolist(), thr_a),
        "test": binary_metrics(test.labels.tolist(), test_a.tolist(), thr_a),
        "test_by_window": by_window_size(test, test_a, thr_a),
        "test_by_source": per_source(test, test_a, thr_a),
    }
    log.info(
        "tfidf_lr: val F0.5 %.4f test F0.5 %.4f (fit %.0fs)",
        results["tfidf_lr"]["val"]["f0_5"],
        results["tfidf_lr"]["test"]["f0_5"],
        fit_a,
    )

    embedding: StaticEmbeddingModel | None = None
    if not args.skip_embedding:
        try:
            t0 = time.monotonic()
            embedding = StaticEmbeddingModel()
            embedding.fit(train.texts, train.labels, train.weights)
            fit_b = time.monotonic() - t0
            val_b = embedding.predict_proba(val.texts)[:, 1]
            thr_b = best_threshold(val.labels, val_b)
            test_b = embedding.predict_proba(test.texts)[:, 1]
            results["static_embedding_lr"] = {
                "fit_seconds": fit_b,
                "threshold": thr_b,
                "val": binary_metrics(val.labels.tolist(), val_b.tolist(), thr_b),
                "test": binary_metrics(test.labels.tolist(), test_b.tolist(), thr_b),
                "test_by_window": by_window_size(test, test_b, thr_b),
                "test_by_source": per_source(test, test_b, thr_b),
            }
            log.info(
                "static_embedding_lr: val F0.5 %.4f test F0.5 %.4f",
                results["static_embedding_lr"]["val"]["f0_5"],
                results["static_embedding_lr"]["test"]["f0_5"],
            )
        except ImportError:
            log.warning("tokenlearn-static-model not installed: skipping approach B")
            embedding = None

    # Ship by validation F0.5 (the test split stays untouched by every choice). Only the
    # TF-IDF graph exports to pure ONNX here; the embedding model would need its tokenizer
    # at run time, so it ships only if it wins clearly *and* that is solved (it was not).
    chosen = "tfidf_lr"
    if "static_embedding_lr" in results:
        b = results["static_embedding_lr"]["val"]["f0_5"]
        a = results["tfidf_lr"]["val"]["f0_5"]
        if b > a:
            log.warning(
                "static embedding won on validation F0.5 (%.4f > %.4f) but is not "
                "exportable to a self-contained ONNX graph; shipping tfidf_lr",
                b,
                a,
            )
    results["chosen"] = chosen

    if not args.no_early:
        test_convs = parts["test"]
        results["tfidf_lr"]["early_detection_test"] = _early(test_convs, lambda w: tfidf.predict_proba(w)[:, 1], thr_a)
        for extra in EARLY_THRESHOLDS:
            results["tfidf_lr"][f"early_detection_test_at_{extra}"] = _early(
                test_convs, lambda w: tfidf.predict_proba(w)[:, 1], extra
            )
        if embedding is not None:
            emb = embedding
            results["static_embedding_lr"]["early_detection_test"] = _early(
                test_convs, lambda w: emb.predict_proba(w)[:, 1], results["static_embedding_lr"]["threshold"]
            )

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "grooming.onnx"
    export_onnx(tfidf, onnx_path)
    parity_texts = val.texts[:3000]
    diff = float(np.max(np.abs(onnx_scores(onnx_path, parity_texts) - val_a[:3000])))
    log.info("ONNX parity on %d validation windows: max |diff| = %.2e", len(parity_texts), diff)
    if diff > 1e-3:
        log.error("ONNX export disagrees with sklearn (max diff %.4f): not shipping", diff)
        return 1

    elapsed = time.monotonic() - started
    metadata = {
        "version": VERSION,
        "threshold": thr_a,
        "approach": "word 1-2-gram + char 2-5-gram TF-IDF, logistic regression",
        "input": {"name": "text", "type": "string", "shape": [None, 1]},
        "output": {"name": "probabilities", "column": 1},
        "window": RUNTIME_WINDOW,
        "window_joiner": "\\n",
        "normalization": {
            "module": "bot.text.normalize_text",
            "version": NORMALIZATION_VERSION,
            "max_chars": DEFAULT_MAX_CHARS,
        },
        "seed": SEED,
        "splits": split_counts,
        "windows": window_counts,
        "onnx_parity_max_abs_diff": diff,
        "onnx_bytes": onnx_path.stat().st_size,
        "train_seconds": round(elapsed, 1),
        "rebuild": "python -m models.train",
        "results": _round(results),
    }
    (args.out / "grooming.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes) and grooming.json in %.0fs", onnx_path, onnx_path.stat().st_size, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
