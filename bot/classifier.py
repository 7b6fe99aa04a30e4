"""The grooming-language text model behind a small protocol: an ONNX runtime session, or a fake for tests."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import groomguard.models
import numpy as np
from groomguard.text import DEFAULT_MAX_CHARS, FOLD_VERSION, content_words, fold_text, model_text

__all__ = [
    "DEFAULT_METADATA_PATH",
    "DEFAULT_MODEL_PATH",
    "REBUILD_HINT",
    "Calibration",
    "FakeClassifier",
    "ModelError",
    "ModelInfo",
    "OnnxClassifier",
    "TextClassifier",
    "load_default_classifier",
]

log = logging.getLogger(__name__)

MODELS_DIR: Final = Path(groomguard.models.__file__).resolve().parent
DEFAULT_MODEL_PATH: Final = MODELS_DIR / "grooming.onnx"
DEFAULT_METADATA_PATH: Final = MODELS_DIR / "grooming.json"
DEFAULT_VOCABULARY_PATH: Final = MODELS_DIR / "grooming.vocab"
REBUILD_HINT: Final = "rebuild it with `make model` or `python -m groomguard.models.train`"
#: Rows per onnxruntime call. The TF-IDF layer is dense (60k floats a row), so big
#: batches cost memory, not speed: 64 rows keep peak RSS low at full throughput.
CHUNK_ROWS: Final = 64


class ModelError(RuntimeError):
    """The text model cannot be used: missing, corrupt, or built for another normalisation."""


@runtime_checkable
class TextClassifier(Protocol):
    """Scores texts for grooming language; synchronous, so callers use `asyncio.to_thread`."""

    #: What an uninformative text scores: the calibrated base rate (no evidence either way).
    base_rate: float

    def classify(self, texts: Sequence[str]) -> list[float]:
        """One calibrated probability per raw text; uninformative text scores exactly `base_rate`."""
        ...

    def informative(self, folded: str) -> bool:
        """True when folded text has at least one content word the model knows."""
        ...

    def classify_folded(self, texts: Sequence[str]) -> list[float]:
        """Like `classify`, for texts already passed through `model_text(fold_text(...))`."""
        ...


@dataclass(frozen=True, slots=True)
class Calibration:
    """Maps the raw model output to a probability at a realistic base rate (Platt scaling).

    p = sigmoid(a · logit(raw) + b), fitted on the validation split weighted to `base_rate`.
    Platt rather than isotonic: it never returns exactly 0 or 1, so the stage evidence that is
    added in log-odds (`groomguard.evidence`) can always move a conversation's risk.
    """

    a: float
    b: float
    base_rate: float

    @classmethod
    def identity(cls, base_rate: float = 0.1) -> Calibration:
        """No mapping: raw scores pass through (models trained before calibration existed)."""
        return cls(1.0, 0.0, base_rate)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for an array of raw scores."""
        clipped = np.clip(np.asarray(raw, dtype=np.float64), 1e-7, 1 - 1e-7)
        z = self.a * np.log(clipped / (1.0 - clipped)) + self.b
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What `models/grooming.json` says about the shipped model."""

    version: str
    threshold: float
    max_chars: int
    normalization_version: int
    window: int
    calibration: Calibration
    #: Conversation-risk thresholds the training run chose on validation (the detector's defaults).
    notice_threshold: float
    moderator_threshold: float
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path = DEFAULT_METADATA_PATH) -> ModelInfo:
        """Read the metadata file; a missing or malformed file is a `ModelError`."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            cal = raw.get("calibration")
            calibration = (
                Calibration(float(cal["a"]), float(cal["b"]), float(cal["base_rate"]))
                if cal
                else Calibration.identity()
            )
            threshold = float(raw["threshold"])
            return cls(
                version=str(raw["version"]),
                threshold=threshold,
                max_chars=int(raw.get("normalization", {}).get("max_chars", DEFAULT_MAX_CHARS)),
                normalization_version=int(raw.get("normalization", {}).get("version", 0)),
                window=int(raw.get("window", 10)),
                calibration=calibration,
                notice_threshold=float(raw.get("notice_threshold", threshold)),
                moderator_threshold=float(raw.get("moderator_threshold", threshold)),
                raw=raw,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model metadata {path} is missing or unreadable ({exc}); {REBUILD_HINT}") from exc


class OnnxClassifier:
    """Runs the exported TF-IDF + logistic-regression graph with onnxruntime.

    The session is created once; one intra-op and one inter-op thread, because the bot runs
    on small machines next to an event loop and batching gives more than threads do here.
    Text is folded by `groomguard.text` before it reaches the graph, exactly as in training.
    """

    def __init__(self, path: Path = DEFAULT_MODEL_PATH, metadata_path: Path | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"grooming model {self.path} is missing; {REBUILD_HINT}")
        meta_path = metadata_path if metadata_path is not None else self.path.with_suffix(".json")
        self.info = ModelInfo.load(meta_path)
        self.calibration = self.info.calibration
        self.base_rate = self.calibration.base_rate
        vocab_path = self.path.with_suffix(".vocab")
        try:
            # The words the model has features for: a message with none of them carries no evidence.
            self.vocabulary = frozenset(vocab_path.read_text(encoding="utf-8").split())
        except OSError as exc:
            raise ModelError(f"model vocabulary {vocab_path} is missing or unreadable ({exc}); {REBUILD_HINT}") from exc
        if self.info.normalization_version != FOLD_VERSION:
            raise ModelError(
                f"model {self.path} was trained with text fold v"
                f"{self.info.normalization_version}, this code uses v{FOLD_VERSION}; "
                f"{REBUILD_HINT}"
            )
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            raise ModelError(f"grooming model {self.path} cannot be loaded ({exc}); {REBUILD_HINT}") from exc
        self._input = self._session.get_inputs()[0].name
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "probabilities" if "probabilities" in outputs else outputs[-1]
        # InferenceSession.run is thread-safe, but serialising keeps one core busy, not two.
        self._lock = threading.Lock()
        self.threshold = self.info.threshold

    def informative(self, folded: str) -> bool:
        """True when folded text has at least one content word in the model's vocabulary."""
        return any(w in self.vocabulary for w in content_words(folded))

    def classify(self, texts: Sequence[str]) -> list[float]:
        """Fold and score a batch; uninformative texts score the base rate without a run."""
        return self.classify_folded([model_text(fold_text(t, self.info.max_chars)) for t in texts])

    def classify_folded(self, texts: Sequence[str]) -> list[float]:
        """Score texts already folded by `model_text(fold_text(...))`, calibrated."""
        scores = [self.base_rate] * len(texts)
        live = [i for i, t in enumerate(texts) if self.informative(t)]
        if not live:
            return scores
        for start in range(0, len(live), CHUNK_ROWS):
            rows = live[start : start + CHUNK_ROWS]
            batch = np.array([texts[i] for i in rows], dtype=object).reshape(-1, 1)
            with self._lock:
                probabilities = self._session.run([self._output], {self._input: batch})[0]
            calibrated = self.calibration(np.clip(np.asarray(probabilities)[:, 1], 0.0, 1.0))
            for i, p in zip(rows, calibrated.tolist(), strict=True):
                scores[i] = float(p)
        return scores


class FakeClassifier:
    """Deterministic stand-in for tests: scores by keyword hits, or from a fixed table."""

    def __init__(
        self,
        scores: dict[str, float] | None = None,
        keywords: Sequence[str] = ("secret", "snap", "pic", "alone", "meet", "tell anyone"),
        default: float = 0.05,
    ) -> None:
        self.scores = dict(scores or {})
        self.keywords = tuple(k.lower() for k in keywords)
        self.default = default
        self.base_rate = default
        self.threshold = 0.5
        self.calls: list[list[str]] = []

    def informative(self, folded: str) -> bool:
        """Any content word counts (the fake has no vocabulary)."""
        return bool(content_words(folded))

    def classify(self, texts: Sequence[str]) -> list[float]:
        """Table lookup on the raw text first, then the keyword rule on the folded text."""
        self.calls.append(list(texts))
        return [self.scores[t] if t in self.scores else self._score(model_text(fold_text(t))) for t in texts]

    def classify_folded(self, texts: Sequence[str]) -> list[float]:
        """The keyword rule on already-folded texts (table entries are matched folded too)."""
        self.calls.append(list(texts))
        folded_table = {model_text(fold_text(k)): v for k, v in self.scores.items()}
        return [folded_table[t] if t in folded_table else self._score(t) for t in texts]

    def _score(self, folded: str) -> float:
        if not self.informative(folded):
            return self.base_rate
        hits = sum(1 for k in self.keywords if k in folded)
        return min(1.0, self.default + 0.3 * hits)


@lru_cache(maxsize=1)
def load_default_classifier() -> OnnxClassifier:
    """The shipped model, loaded once per process; raises `ModelError` with a rebuild hint."""
    classifier = OnnxClassifier(DEFAULT_MODEL_PATH, DEFAULT_METADATA_PATH)
    log.info("loaded grooming model %s version %s", DEFAULT_MODEL_PATH.name, classifier.info.version)
    return classifier
