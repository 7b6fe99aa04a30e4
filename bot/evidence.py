"""Conversation evidence: how an adult's messages to a child add up to one risk (pure, serialisable).

One `ConversationEvidence` per adult→child conversation. Each of the adult's messages is first
judged for how informative it is; acknowledgements, emoji, unknown scripts and text with no word
the model knows carry no evidence and change nothing (they neither dilute nor inflate the risk).
Informative messages enter a window of the adult's last N informative messages, which the text
model scores as one text; the model part of the risk is the median of the last few window scores,
so one odd message neither raises nor clears an alarm. Grooming stages seen anywhere in the
conversation add to the risk in log-odds, more when escalation follows probing for personal
information. The detector, the offline evaluation and `groomguard eval` all run this same code.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CHILD_DIRECTED_STAGES",
    "ESCALATION_LOGIT",
    "MODEL_VETO_LOGIT",
    "PATTERN_MIN_ESCALATIONS",
    "PATTERN_WITHOUT_PROBING",
    "PROBING_LOGIT",
    "SECOND_OPINION_FROM",
    "SECOND_OPINION_WEIGHT",
    "ConversationEvidence",
    "EvidenceSettings",
    "agree",
    "logit",
    "sigmoid",
    "with_second_opinion",
]

#: Log-odds each distinct escalation stage (secrecy, isolation, gifts, another app, photos, sexual
#: talk, meeting) adds, up to `MAX_ESCALATIONS` of them: a stage is weak evidence on its own (coaches
#: say "meet at the field"), several distinct ones in one adult's messages to a child are not.
ESCALATION_LOGIT: Final = 0.7
MAX_ESCALATIONS: Final = 4
#: Added once when escalation follows probing for age, school, being alone or where the parents are:
#: the sequence the grooming literature and moderators treat as most urgent.
PROBING_LOGIT: Final = 0.5
#: Probing followed by this many distinct escalation stages is the pattern itself: risk is lifted to
#: at least the child-notice threshold even if the wording is unfamiliar to the model.
PATTERN_MIN_ESCALATIONS: Final = 2
#: ... and this many distinct escalation stages are the pattern even without probing first.
PATTERN_WITHOUT_PROBING: Final = 3
#: How far below the base rate the model alone can pull a conversation, in log-odds. The model is
#: weak on wording it never saw (paraphrases, other registers), so it may say "reads benign" but it
#: cannot veto several distinct grooming stages the lexicons found.
MODEL_VETO_LOGIT: Final = -1.0
#: English windows the text model scores at least this high get a second opinion from the multilingual
#: sentence-embedding model (trained on the same English data, but reading meaning rather than n-grams);
#: the two are averaged in log-odds. Below it, the first model's "benign" stands: most chat never pays
#: for the second model.
SECOND_OPINION_FROM: Final = 0.3
#: How much the second opinion counts when the two are averaged in log-odds (0.5 = equal). The embedding
#: model reads meaning and was the better judge of explicit adult chat (NPS Chat, CONDA) in the replays,
#: so it gets the larger share; the n-gram model still moves the result (see models/MODEL_CARD.md).
SECOND_OPINION_WEIGHT: Final = 0.7
#: Stages only grooming of a child shows: probing for age, school, being alone or the parents, secrecy,
#: isolation from friends and family, gifts as a lever, meeting. Sexual talk, "add me on snap" and photo
#: requests are just as common between adults (the negatives README and the NPS/CONDA replays), so a
#: conversation that shows none of these stages never alerts moderators, and notifies the child only
#: when the text model alone reads it at the moderator's confidence.
CHILD_DIRECTED_STAGES: Final = frozenset({"personal_info", "secrecy", "isolation", "gifts", "meeting"})
_EPS: Final = 1e-6


def _just_below(threshold: float) -> float:
    """A risk a hair under `threshold` (in log-odds), so a capped conversation stays visibly near it."""
    return sigmoid(logit(threshold) - 0.01)


def logit(p: float) -> float:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    p = min(1.0 - _EPS, max(_EPS, p))
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    """The inverse of `logit`."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def with_second_opinion(
    scores: Sequence[float], texts: Sequence[str], second: Callable[[list[str]], Sequence[float]]
) -> list[float]:
    """`scores` with every one ≥ SECOND_OPINION_FROM replaced by its `agree` with `second` on the same text.

    `texts[i]` is what the second model reads for `scores[i]` (the raw lines of that window). One place
    for the rule, shared by the detector, `score`/`eval` and the offline replay.
    """
    out = [float(x) for x in scores]
    ask = [i for i, p in enumerate(out) if p >= SECOND_OPINION_FROM]
    if ask:
        for i, q in zip(ask, second([texts[i] for i in ask]), strict=True):
            out[i] = agree(out[i], float(q))
    return out


def agree(first: float, second: float, weight: float = SECOND_OPINION_WEIGHT) -> float:
    """Two calibrated probabilities of the same window combined: their weighted mean in log-odds.

    Why: the n-gram model alone flags explicit adult chat it shares words with; the embedding model
    alone misses PJ-style wording. A window both read as grooming stays high; one they disagree on drops.
    """
    return sigmoid((1.0 - weight) * logit(first) + weight * logit(second))


@dataclass(frozen=True, slots=True)
class EvidenceSettings:
    """The knobs of the aggregation (the detector maps its user-facing settings onto these)."""

    window: int = 10
    smooth: int = 3
    notice_threshold: float = 0.5
    #: Where moderators are alerted; without a child-directed stage risk stays below it (and below the
    #: notice threshold too unless the model alone reads the window at least this high).
    moderator_threshold: float = 0.9
    child_directed_stages: frozenset[str] = CHILD_DIRECTED_STAGES
    escalation_stages: frozenset[str] = frozenset(
        {"secrecy", "isolation", "gifts", "off_platform", "photos", "sexual", "meeting"}
    )
    probing_stage: str = "personal_info"
    #: How window lines are joined: a space for the English model (it folds newlines anyway), a newline
    #: for the multilingual model (it embeds line by line).
    joiner: str = " "


@dataclass(slots=True)
class ConversationEvidence:
    """What one adult→child conversation has shown so far; `to_dict`/`from_dict` round-trip exactly."""

    window: deque[str] = field(default_factory=deque)
    #: The same informative messages as written (trimmed), for the second-opinion model.
    lines: deque[str] = field(default_factory=deque)
    scores: deque[float] = field(default_factory=deque)
    #: Stage name → index (among informative messages) where it was first seen.
    stages: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    informative: int = 0
    #: Languages seen that no model covers, with how many messages each: reported, never scored.
    unscored: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        model_text: str,
        informative: bool,
        stages: Iterable[str],
        settings: EvidenceSettings,
        line: str | None = None,
    ) -> str | None:
        """Take one adult message; return the window text the model must score, or None if it carries nothing.

        Stages count even from a message the model would not score (a lone "snapchat?" is a stage tag).
        """
        self.messages += 1
        for stage in stages:
            self.stages.setdefault(stage, self.informative)
        if not informative:
            return None
        self.informative += 1
        self.window.append(model_text)
        while len(self.window) > settings.window:
            self.window.popleft()
        if line is not None:
            self.lines.append(" ".join(line.split())[:300])
            while len(self.lines) > settings.window:
                self.lines.popleft()
        return settings.joiner.join(self.window)

    def raw_window(self) -> str:
        """The recent informative messages as written, one per line (what the second opinion reads)."""
        return "\n".join(self.lines)

    def record(self, score: float, settings: EvidenceSettings) -> None:
        """Remember the model's score of the window `add` returned."""
        self.scores.append(score)
        while len(self.scores) > settings.smooth:
            self.scores.popleft()

    def note_unscored(self, language: str) -> None:
        """Count a message in a language no model covers (it is reported, not given a number)."""
        self.unscored[language] = self.unscored.get(language, 0) + 1

    def escalations(self, settings: EvidenceSettings) -> list[str]:
        """Escalation stages seen, in the order they first appeared."""
        seen = [s for s in self.stages if s in settings.escalation_stages]
        return sorted(seen, key=lambda s: self.stages[s])

    def risk(self, settings: EvidenceSettings, base_rate: float) -> float:
        """Conversation risk in [0, 1]: the model's view of the recent window plus stage progression."""
        if self.scores:
            recent = sorted(self.scores)
            model_part = recent[len(recent) // 2]
        elif self.stages:
            model_part = base_rate  # stage tags alone, no scoreable wording yet
        else:
            return 0.0
        escalations = self.escalations(settings)
        probing_at = self.stages.get(settings.probing_stage)
        bonus = ESCALATION_LOGIT * min(len(escalations), MAX_ESCALATIONS)
        probed_first = probing_at is not None and any(self.stages[s] >= probing_at for s in escalations)
        if probed_first:
            bonus += PROBING_LOGIT
        model_evidence = max(logit(model_part) - logit(base_rate), MODEL_VETO_LOGIT)
        risk = sigmoid(logit(base_rate) + model_evidence + bonus)
        if (probed_first and len(escalations) >= PATTERN_MIN_ESCALATIONS) or len(
            escalations
        ) >= PATTERN_WITHOUT_PROBING:
            risk = max(risk, settings.notice_threshold)
        if not self.child_directed(settings):
            # Nothing only child grooming shows: explicit or flirty adult talk must not alert anyone.
            sure = model_part >= settings.moderator_threshold
            risk = min(risk, _just_below(settings.moderator_threshold if sure else settings.notice_threshold))
        return min(1.0, max(0.0, risk))

    def child_directed(self, settings: EvidenceSettings) -> bool:
        """True once the adult has shown a stage only grooming of a child shows (see CHILD_DIRECTED_STAGES)."""
        return any(s in settings.child_directed_stages for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot (what the detector stores, so a restart resumes exactly here)."""
        return {
            "window": list(self.window),
            "lines": list(self.lines),
            "scores": list(self.scores),
            "stages": dict(self.stages),
            "messages": self.messages,
            "informative": self.informative,
            "unscored": dict(self.unscored),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationEvidence:
        """Rebuild a snapshot made by `to_dict`."""
        return cls(
            window=deque(str(x) for x in data.get("window", ())),
            lines=deque(str(x) for x in data.get("lines", ())),
            scores=deque(float(x) for x in data.get("scores", ())),
            stages={str(k): int(v) for k, v in dict(data.get("stages", {})).items()},
            messages=int(data.get("messages", 0)),
            informative=int(data.get("informative", 0)),
            unscored={str(k): int(v) for k, v in dict(data.get("unscored", {})).items()},
        )
