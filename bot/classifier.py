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

import numpy as np

from bot.text import DEFAULT_MAX_CHARS, NORMALIZATION_VERSION, normalize_text

__all__ = [
    "DEFAULT_METADATA_PATH",
    "DEFAULT_MODEL_PATH",
    "REBUILD_HINT",
    "FakeClassifier",
    "ModelError",
    "ModelInfo",
    "OnnxClassifier",
    "TextClassifier",
    "load_default_classifier",
]

log = logging.getLogger(__name__)

MODELS_DIR: Final = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_PATH: Final = MODELS_DIR / "grooming.onnx"
DEFAULT_METADATA_PATH: Final = MODELS_DIR / "grooming.json"
REBUILD_HINT: Final = "rebuild it with `make model` or `python -m models.train`"
#: Rows per onnxruntime call. The TF-IDF layer is dense (60k floats a row), so big
#: batches cost memory, not speed: 64 rows keep peak RSS low at full throughput.
CHUNK_ROWS: Final = 64


class ModelError(RuntimeError):
    """The text model cannot be used: missing, corrupt, or built for another normalisation."""


@runtime_checkable
class TextClassifier(Protocol):
    """Scores texts for grooming language; synchronous, so callers use `asyncio.to_thread`."""

    def classify(self, texts: Sequence[str]) -> list[float]:
        """One probability in [0, 1] per text, in order; empty or unreadable text scores 0."""
        ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What `models/grooming.json` says about the shipped model."""

    version: str
    threshold: float
    max_chars: int
    normalization_version: int
    window: int
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path = DEFAULT_METADATA_PATH) -> ModelInfo:
        """Read the metadata file; a missing or malformed file is a `ModelError`."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                version=str(raw["version"]),
                threshold=float(raw["threshold"]),
                max_chars=int(raw.get("normalization", {}).get("max_chars", DEFAULT_MAX_CHARS)),
                normalization_version=int(raw.get("normalization", {}).get("version", 0)),
                window=int(raw.get("window", 10)),
                raw=raw,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model metadata {path} is missing or unreadable ({exc}); {REBUILD_HINT}") from exc


class OnnxClassifier:
    """Runs the exported TF-IDF + logistic-regression graph with onnxruntime.

    The session is created once; one intra-op and one inter-op thread, because the bot runs
    on small machines next to an event loop and batching gives more than threads do here.
    Text is normalised by `bot.text` before it reaches the graph, exactly as in training.
    """

    def __init__(self, path: Path = DEFAULT_MODEL_PATH, metadata_path: Path | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"grooming model {self.path} is missing; {REBUILD_HINT}")
        meta_path = metadata_path if metadata_path is not None else self.path.with_suffix(".json")
        self.info = ModelInfo.load(meta_path)
        if self.info.normalization_version != NORMALIZATION_VERSION:
            raise ModelError(
                f"model {self.path} was trained with text normalisation v"
                f"{self.info.normalization_version}, this code uses v{NORMALIZATION_VERSION}; "
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

    def classify(self, texts: Sequence[str]) -> list[float]:
        """Normalise and score a batch; texts that normalise to nothing score 0 without a run."""
        folded = [normalize_text(t, self.info.max_chars) for t in texts]
        scores = [0.0] * len(folded)
        live = [i for i, t in enumerate(folded) if t]
        if not live:
            return scores
        for start in range(0, len(live), CHUNK_ROWS):
            rows = live[start : start + CHUNK_ROWS]
            batch = np.array([folded[i] for i in rows], dtype=object).reshape(-1, 1)
            with self._lock:
                probabilities = self._session.run([self._output], {self._input: batch})[0]
            for i, p in zip(rows, np.asarray(probabilities)[:, 1].tolist(), strict=True):
                scores[i] = min(1.0, max(0.0, float(p)))
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
        self.threshold = 0.5
        self.calls: list[list[str]] = []

    def classify(self, texts: Sequence[str]) -> list[float]:
        """Table lookup first, then 0.3 per keyword hit above the default, capped at 1."""
        self.calls.append(list(texts))
        out: list[float] = []
        for text in texts:
            if text in self.scores:
                out.append(self.scores[text])
                continue
            folded = normalize_text(text)
            hits = sum(1 for k in self.keywords if k in folded)
            out.append(min(1.0, self.default + 0.3 * hits))
        return out


@lru_cache(maxsize=1)
def load_default_classifier() -> OnnxClassifier:
    """The shipped model, loaded once per process; raises `ModelError` with a rebuild hint."""
    classifier = OnnxClassifier(DEFAULT_MODEL_PATH, DEFAULT_METADATA_PATH)
    log.info("loaded grooming model %s version %s", DEFAULT_MODEL_PATH.name, classifier.info.version)
    return classifier
