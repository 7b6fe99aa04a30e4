"""grooming_language: grooming talk from an adult (or unknown-age) account to a minor, scored per conversation."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

from groomguard.addressing import addressees
from groomguard.classifier import OnnxClassifier, TextClassifier, load_default_classifier
from groomguard.detectors.base import DetectorMemory, DetectorSettings, DetectorState
from groomguard.events import BaseEvent, MessageEdited, MessageSent
from groomguard.evidence import ConversationEvidence, EvidenceSettings, logit, sigmoid, with_second_opinion
from groomguard.findings import Evidence, Finding
from groomguard.memory import MemoryBook
from groomguard.stages import STAGES, StageTagger, default_tagger
from groomguard.text import content_words, fold, model_text
from pydantic import Field, model_validator

log = logging.getLogger(__name__)

#: Stored text per message is cut here: the window model needs no more, and memory stays bounded.
STORED_CHARS = 600
ENGLISH = "en"

#: Plain words for stage names on cards and in notices (no detector jargon for moderators).
STAGE_WORDS: dict[str, str] = {
    "rapport": "flattery and a 'special' bond",
    "personal_info": "questions about age, school, home or parents",
    "secrecy": "asking for secrecy",
    "isolation": "turning the child against family or friends",
    "gifts": "gifts or money as a lever",
    "off_platform": "moving the chat to another app",
    "photos": "asking for photos or the camera",
    "sexual": "sexual talk",
    "meeting": "arranging to meet",
}


class LanguageRouter(Protocol):
    """Which language a message is in and, for covered non-English languages, how to score it."""

    def language(self, text: str, recent: Sequence[str] = ()) -> tuple[str, str]:
        """(ISO code, plain name) of a message read with the speaker's `recent` lines; ("en", "English")
        when English or too short to tell."""
        ...

    def covers(self, code: str) -> bool:
        """True when a non-English language has a scorer."""
        ...

    def classifier(self, code: str) -> TextClassifier:
        """The scorer for a covered language."""
        ...

    def tagger(self, code: str) -> StageTagger:
        """The stage lexicon for a covered language."""
        ...

    def second_opinion(self) -> TextClassifier | None:
        """The embedding model that re-reads English windows the n-gram model finds risky, if loaded."""
        ...


class GroomingLanguageSettings(DetectorSettings):
    """Thresholds and bounds for grooming-language detection."""

    model_path: str | None = Field(
        None, description="path to a grooming .onnx model; empty uses the shipped models/grooming.onnx"
    )
    child_notice_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="conversation risk (a calibrated probability of grooming) at which the child gets a "
        "private, kind notice; empty uses the threshold the shipped model was validated at. Lower = earlier, "
        "more notices to children who were not at risk",
    )
    moderator_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="conversation risk at which the suspect's case gets a finding with stages and short "
        "excerpts; empty uses the shipped model's validated moderator threshold. Lower = more moderator work",
    )
    child_only_score: float = Field(
        0.45,
        ge=0,
        le=1,
        description="score a below-moderator-threshold finding adds to the case; keep it under "
        "cases.alert_threshold so a child notice alone never alerts moderators",
    )
    window_messages: int = Field(
        10, ge=1, le=50, description="recent informative messages from the suspect that the model reads as one window"
    )
    smooth: int = Field(
        3, ge=1, le=10, description="median over this many recent window scores, so one odd line cannot alert"
    )
    min_messages: int = Field(
        3,
        ge=1,
        le=100,
        description="informative messages from the suspect before any alert ('ok', 'lol' and emoji do not count)",
    )
    rise_to_update: float = Field(
        0.05, ge=0, le=1, description="risk increase after an alert that refreshes the finding"
    )
    memory_days: int = Field(
        30,
        ge=1,
        le=365,
        description="how long a quiet adult→minor conversation is remembered (its evidence window, stages and "
        "alert level, stored with the batch so restarts resume exactly); store retention still applies",
    )
    max_excerpts: int = Field(5, ge=0, le=25, description="short matched phrases shown to moderators")
    excerpt_chars: int = Field(60, ge=10, le=200, description="longest excerpt shown to moderators")
    languages: bool = Field(
        True,
        description="score covered non-English languages with the multilingual model; other languages are "
        "reported as 'not scored' either way",
    )

    @model_validator(mode="after")
    def _ordered(self) -> GroomingLanguageSettings:
        if (
            self.moderator_threshold is not None
            and self.child_notice_threshold is not None
            and self.moderator_threshold < self.child_notice_threshold
        ):
            raise ValueError("moderator_threshold must not be below child_notice_threshold")
        return self


@dataclass(slots=True)
class _Conversation:
    """What we remember of one suspect→child conversation: evidence per language and a short tail."""

    evidence: dict[str, ConversationEvidence] = field(default_factory=dict)
    message_ids: deque[str] = field(default_factory=deque)
    #: (message id, [(stage, matched phrase)], message time ISO) of the last messages that matched a stage.
    matches: deque[tuple[str, list[tuple[str, str]], str]] = field(default_factory=deque)
    count: int = 0
    level: int = 0  # 0 nothing sent, 1 child notice, 2 moderator finding
    alerted_risk: float = 0.0
    alerted_stages: frozenset[str] = frozenset()
    #: The adult's last few raw lines, only for telling the conversation's language (short lines follow it).
    lang_lines: deque[str] = field(default_factory=deque)
    #: 1.0 for a private conversation; below 1 when the pair only talks in a group room (reply, mention,
    #: turn-taking: `groomguard.addressing`), so open-room evidence counts for less than a DM.
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot; `from_dict` restores it exactly."""
        return {
            "evidence": {lang: ev.to_dict() for lang, ev in self.evidence.items()},
            "message_ids": list(self.message_ids),
            "matches": [[m, [list(x) for x in ms], at] for m, ms, at in self.matches],
            "count": self.count,
            "level": self.level,
            "alerted_risk": self.alerted_risk,
            "alerted_stages": sorted(self.alerted_stages),
            "lang_lines": list(self.lang_lines),
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Conversation:
        """Rebuild a `to_dict` snapshot."""
        return cls(
            evidence={str(k): ConversationEvidence.from_dict(v) for k, v in dict(data.get("evidence", {})).items()},
            message_ids=deque(str(x) for x in data.get("message_ids", ())),
            # Rows stored before message times were kept have two items: their time is unknown ("").
            matches=deque(
                (str(row[0]), [(str(a), str(b)) for a, b in row[1]], str(row[2]) if len(row) > 2 else "")
                for row in data.get("matches", ())
            ),
            count=int(data.get("count", 0)),
            level=int(data.get("level", 0)),
            alerted_risk=float(data.get("alerted_risk", 0.0)),
            alerted_stages=frozenset(str(x) for x in data.get("alerted_stages", ())),
            lang_lines=deque(str(x) for x in data.get("lang_lines", ())),
            weight=float(data.get("weight", 1.0)),
        )

    def stages(self) -> set[str]:
        """Every stage seen in this conversation, in any language."""
        return {s for ev in self.evidence.values() for s in ev.stages}

    def unscored(self) -> dict[str, int]:
        """Messages per language that no model covers."""
        out: dict[str, int] = {}
        for ev in self.evidence.values():
            for lang, n in ev.unscored.items():
                out[lang] = out.get(lang, 0) + n
        return out

    def informative(self) -> int:
        """Informative messages over all languages."""
        return sum(ev.informative for ev in self.evidence.values())


class GroomingLanguageDetector:
    """Scores the adult side of adult→minor conversations with the text model and stage tags."""

    name: ClassVar[str] = "grooming_language"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (
        MessageSent,
        MessageEdited,
    )

    def __init__(
        self,
        settings: GroomingLanguageSettings,
        classifier: TextClassifier | None = None,
        tagger: StageTagger | None = None,
        languages: LanguageRouter | None = None,
    ) -> None:
        self.settings = settings
        if classifier is None:
            # Loaded here so a missing or corrupt model stops start-up with a clear ModelError.
            classifier = OnnxClassifier(Path(settings.model_path)) if settings.model_path else load_default_classifier()
        self.classifier = classifier
        self.tagger = tagger if tagger is not None else default_tagger()
        if languages is None and settings.languages and isinstance(classifier, OnnxClassifier):
            from groomguard.language_routing import default_router

            languages = default_router()
        self.languages = languages
        # Empty settings mean the thresholds the shipped model's training run validated (grooming.json);
        # a classifier without metadata (a test fake) falls back to conservative 0.8 / 0.9.
        info = getattr(classifier, "info", None)
        notice = settings.child_notice_threshold or (info.notice_threshold if info is not None else 0.8)
        moderator = settings.moderator_threshold or (info.moderator_threshold if info is not None else 0.9)
        self.notice_threshold = float(notice)
        self.moderator_threshold = max(float(moderator), self.notice_threshold)
        #: Used only when the caller's state has no store behind it (unit tests driving `inspect` directly).
        self._local = MemoryBook()
        #: Messages per language that were reported "not scored" (read by metrics).
        self.unscored_messages: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def _evidence_settings(self, tagger: StageTagger, joiner: str) -> EvidenceSettings:
        s = self.settings
        return EvidenceSettings(
            window=s.window_messages,
            smooth=s.smooth,
            notice_threshold=self.notice_threshold,
            moderator_threshold=self.moderator_threshold,
            escalation_stages=tagger.escalation,
            joiner=joiner,
        )

    def _memory(self, state: DetectorState) -> DetectorMemory:
        memory = getattr(state, "memory", None)
        return memory(self.name) if memory is not None else self._local.view(self.name)  # type: ignore[return-value]

    @staticmethod
    def _key(conversation: str, author: str, child: str) -> str:
        return f"{conversation}\x1f{author}\x1f{child}"

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        """Score a message from a possible adult to minor recipients; findings on threshold crossings.

        What a conversation has shown so far lives in the detector memory (written with the batch), so
        a restart or kill -9 resumes exactly where the last committed batch left it.
        """
        if not isinstance(event, MessageSent | MessageEdited):
            return ()
        author = await state.account(event.community, event.author)
        if not author.may_be_adult:
            return ()
        weighted = await self._minor_recipients(event, state)
        if not weighted:
            return ()
        memory = self._memory(state)
        children = list(weighted)
        folded = fold(event.text)
        if folded.binary or not folded.text.strip():
            return ()
        expires = event.at + timedelta(days=self.settings.memory_days)
        convs: list[tuple[str, str, _Conversation]] = []
        for child in children:
            key = self._key(event.conversation, event.author, child)
            raw = await memory.get(event.community, key, at=event.at)
            conv = _Conversation.from_dict(raw) if raw else _Conversation(weight=weighted[child])
            conv.weight = max(conv.weight, weighted[child])
            convs.append((child, key, conv))
        code, language = (ENGLISH, "English")
        if self.languages is not None:
            code, language = self.languages.language(event.text, list(convs[0][2].lang_lines))
        classifier, tagger, joiner = self.classifier, self.tagger, " "
        scored = code == ENGLISH or (self.languages is not None and self.languages.covers(code))
        if code != ENGLISH and scored and self.languages is not None:
            classifier, tagger, joiner = self.languages.classifier(code), self.languages.tagger(code), "\n"
        text = folded.text[:STORED_CHARS]
        if code == ENGLISH:
            window_text = model_text(text)
            informative = classifier.informative(window_text)
        else:
            window_text = " ".join(event.text.split())[:STORED_CHARS]
            informative = scored and bool(content_words(text))
        matches = tagger.tag(folded) if scored else []
        message_stages = tuple(s for s in STAGES if any(m.stage == s for m in matches))
        settings = self._evidence_settings(tagger, joiner)
        keep = self.settings.window_messages
        pending: list[tuple[ConversationEvidence, str]] = []
        for _, _, conv in convs:
            conv.count += 1
            conv.message_ids.append(event.message_id)
            conv.lang_lines.append(event.text[:300])
            while len(conv.message_ids) > keep:
                conv.message_ids.popleft()
            while len(conv.lang_lines) > keep:
                conv.lang_lines.popleft()
            if matches:
                conv.matches.append((event.message_id, [(m.stage, m.span) for m in matches], event.at_iso))
                while len(conv.matches) > keep:
                    conv.matches.popleft()
            evidence = conv.evidence.setdefault(code if scored else ENGLISH, ConversationEvidence())
            if not scored:
                evidence.note_unscored(language)
                self.unscored_messages[language] = self.unscored_messages.get(language, 0) + 1
                continue
            window = evidence.add(window_text, informative, message_stages, settings, line=event.text)
            if window is not None:
                pending.append((evidence, window))
        if pending:
            # One batched call for every child this message reached; the models run off the loop.
            scores = await asyncio.to_thread(self._score, classifier, code, [(e, w) for e, w in pending])
            for (evidence, _), score in zip(pending, scores, strict=True):
                evidence.record(float(score), settings)
        findings = []
        for child, key, conv in convs:
            finding = self._judge(event, child, conv)
            memory.put(event.community, key, conv.to_dict(), accounts=(event.author, child), expires_at=expires)
            if finding is not None:
                findings.append(finding)
        if isinstance(event, MessageSent):
            index = self._key(event.conversation, event.author, "")
            known = await memory.get(event.community, index, at=event.at) or []
            merged = sorted(set(known) | set(children))
            if merged != known:
                memory.put(event.community, index, merged, accounts=(event.author, *merged), expires_at=expires)
        return findings

    def _score(
        self, classifier: TextClassifier, code: str, windows: list[tuple[ConversationEvidence, str]]
    ) -> list[float]:
        """Window scores; English windows the n-gram model reads as risky also ask the embedding model."""
        scores = classifier.classify_folded([w for _, w in windows])
        second = self.languages.second_opinion() if code == ENGLISH and self.languages is not None else None
        if second is None:
            return scores
        return with_second_opinion(scores, [e.raw_window() for e, _ in windows], second.classify)

    async def _minor_recipients(self, event: MessageSent | MessageEdited, state: DetectorState) -> dict[str, float]:
        """Children this message is addressed to, with how much it counts (1 private, less in a group room)."""
        candidates: dict[str, float] = {}
        if isinstance(event, MessageSent):
            if event.private or not hasattr(state, "turns_newest_first"):
                candidates = {r: 1.0 for r in event.recipients[:10] if r != event.author}
            else:
                # A group room, channel or public thread: replies, mentions and turn-taking say who is
                # addressed, not who could read it (`recipients`); a message naming several children (a
                # coach's practice times) addresses none of them.
                found = await addressees(event, state)  # type: ignore[arg-type]
                candidates = {a.account: a.weight for a in found[:10]}
        else:
            # Edits carry no recipients: reuse the children already seen in this conversation.
            index = self._key(event.conversation, event.author, "")
            seen = await self._memory(state).get(event.community, index, at=event.at)
            candidates = dict.fromkeys(seen or [], 1.0)
        children: dict[str, float] = {}
        for recipient, weight in candidates.items():
            if (await state.account(event.community, recipient)).is_minor:
                children[recipient] = weight
        return children

    def risk(self, conv: _Conversation) -> float:
        """The conversation's risk now: the highest over the languages it was written in."""
        base = float(getattr(self.classifier, "base_rate", 0.1))
        best = 0.0
        for code, evidence in conv.evidence.items():
            if evidence.informative < self.settings.min_messages:
                continue
            tagger = self.tagger
            if code != ENGLISH and self.languages is not None and self.languages.covers(code):
                tagger = self.languages.tagger(code)
            best = max(best, evidence.risk(self._evidence_settings(tagger, " "), base))
        if conv.weight < 1.0 and best > 0.0:
            # Open-room evidence counts for less: shrink its distance from the base rate in log-odds.
            best = sigmoid(logit(base) + conv.weight * (logit(best) - logit(base)))
        return best

    def _judge(self, event: MessageSent | MessageEdited, child: str, conv: _Conversation) -> Finding | None:
        s = self.settings
        if conv.informative() < s.min_messages:
            return None
        risk = self.risk(conv)
        seen = frozenset(conv.stages())
        level = 2 if risk >= self.moderator_threshold else 1 if risk >= self.notice_threshold else 0
        if level == 0:
            return None
        new_stages = seen - conv.alerted_stages
        refresh = level == 2 and conv.level == 2 and (risk >= conv.alerted_risk + s.rise_to_update or bool(new_stages))
        # A stage not reported before (photos, a meeting after small talk) is news at either level: the case
        # hears of it, and the child may be told again; NoticeBook decides whether a second notice goes out.
        restage = level >= 1 and conv.level >= 1 and bool(new_stages)
        if level <= conv.level and not refresh and not restage:
            return None
        notify = conv.level == 0 or bool(new_stages)
        conv.level = max(conv.level, level)
        conv.alerted_risk = risk
        conv.alerted_stages = conv.alerted_stages | seen
        stages = tuple(st for st in STAGES if st in seen)
        log.info(
            "grooming_language: conversation %s risk %.2f level %d (event %s)",
            event.conversation,
            risk,
            level,
            event.key,
        )
        named = "; ".join(STAGE_WORDS.get(st, st) for st in stages) or "no specific stage"
        unscored = conv.unscored()
        unscored_note = "; ".join(f"not scored: {lang} ({n} messages)" for lang, n in sorted(unscored.items()))
        extra = (Evidence(kind="language", ref=event.conversation, label=unscored_note[:300]),) if unscored else ()
        if level == 1:
            return Finding(
                detector=self.name,
                platform=event.platform,
                community=event.community,
                suspect=event.author,
                score=min(risk, s.child_only_score),
                reason=f"messages to an under-18 account read like grooming ({named})"[:500],
                evidence=(
                    *(
                        self._excerpts(conv, child)
                        or [
                            Evidence(
                                kind="conversation",
                                ref=event.conversation,
                                label=f"{conv.count} messages to the child read like grooming (no single phrase to quote)",
                                at=event.at,
                                child=child,
                            )
                        ]
                    ),
                    *extra,
                ),
                at=event.at,
                event_key=event.key,
                child=child,
                notify_child=notify,
                stages=stages,
            )
        return Finding(
            detector=self.name,
            platform=event.platform,
            community=event.community,
            suspect=event.author,
            score=risk,
            reason=f"grooming language towards an under-18 account (likelihood {risk:.0%}): {named}"[:500],
            evidence=(
                Evidence(
                    kind="conversation",
                    ref=event.conversation,
                    label=f"{conv.count} messages to the child; seen: {named}"[:300],
                    at=event.at,
                    child=child,
                ),
                *self._excerpts(conv, child),
                *extra,
            ),
            at=event.at,
            event_key=event.key,
            child=child,
            notify_child=notify,
            stages=stages,
        )

    def _excerpts(self, conv: _Conversation, child: str) -> list[Evidence]:
        # Minimal evidence: only the matched phrase of each stage, one per stage, newest first, cut to
        # excerpt_chars, so moderators see why without reading the whole conversation here. The stage is
        # named in plain words, with the message's time and the child it was sent to.
        out: list[Evidence] = []
        shown: set[str] = set()
        for message_id, matches, at in reversed(conv.matches):
            for stage, span in matches:
                if stage in shown or len(out) >= self.settings.max_excerpts:
                    continue
                shown.add(stage)
                excerpt = span[: self.settings.excerpt_chars]
                out.append(
                    Evidence(
                        kind="message",
                        ref=message_id,
                        label=f"{STAGE_WORDS.get(stage, stage.replace('_', ' '))}: “{excerpt}”"[:300],
                        at=datetime.fromisoformat(at) if at else None,
                        child=child,
                    )
                )
        return out

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop what this process holds about `account` (the store's memory rows go in the store's forget)."""
        self._local.forget(account, community)
        # The embedding cache holds recent lines' text, not indexed by account: clearing it is the sure way.
        forget = getattr(self.languages, "forget", None)
        if callable(forget):
            forget()


__all__ = ["STAGE_WORDS", "GroomingLanguageDetector", "GroomingLanguageSettings", "LanguageRouter"]
