"""grooming_language: grooming talk from an adult (or unknown-age) account to a minor, scored per conversation."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.classifier import OnnxClassifier, TextClassifier, load_default_classifier
from bot.detectors.base import DetectorState
from bot.events import BaseEvent, MessageEdited, MessageSent
from bot.findings import Evidence, Finding
from bot.scoring import conversation_risk
from bot.stages import STAGES, StageMatch, StageTagger, default_tagger
from bot.text import normalize

log = logging.getLogger(__name__)

#: Stored text per message is cut here: the window model needs no more, and memory stays bounded.
STORED_CHARS = 600


class GroomingLanguageSettings(BaseModel):
    """Thresholds and bounds for grooming-language detection."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="turn the detector on or off")
    model_path: str | None = Field(
        None, description="path to a grooming .onnx model; empty uses the shipped models/grooming.onnx"
    )
    child_notice_threshold: float = Field(
        0.80,
        gt=0,
        le=1,
        description="conversation risk at which the child gets a private, kind notice; lower = earlier, "
        "more notices to children who were not at risk",
    )
    moderator_threshold: float = Field(
        0.90,
        gt=0,
        le=1,
        description="conversation risk at which the suspect's case gets a finding with stages and short "
        "excerpts; lower = more moderator work",
    )
    child_only_score: float = Field(
        0.45,
        ge=0,
        le=1,
        description="score a below-moderator-threshold finding adds to the case; keep it under "
        "cases.alert_threshold so a child notice alone never alerts moderators",
    )
    window_messages: int = Field(
        10, ge=1, le=50, description="recent messages from the suspect that the model reads as one window"
    )
    smooth: int = Field(
        3, ge=1, le=10, description="median over this many recent window scores, so one odd line cannot alert"
    )
    min_messages: int = Field(
        3, ge=1, le=100, description="messages from the suspect before any alert; avoids judging a hello"
    )
    rise_to_update: float = Field(
        0.05, ge=0, le=1, description="risk increase after an alert that refreshes the finding"
    )
    max_conversations: int = Field(
        20_000, ge=10, le=1_000_000, description="adult→minor conversations kept in memory (least recent dropped)"
    )
    max_excerpts: int = Field(5, ge=0, le=25, description="short matched phrases shown to moderators")
    excerpt_chars: int = Field(60, ge=10, le=200, description="longest excerpt shown to moderators")

    @model_validator(mode="after")
    def _ordered(self) -> GroomingLanguageSettings:
        if self.moderator_threshold < self.child_notice_threshold:
            raise ValueError("moderator_threshold must not be below child_notice_threshold")
        return self


@dataclass(slots=True)
class _Conversation:
    """What we remember of one suspect→child conversation: a short, bounded tail."""

    texts: deque[str]
    message_ids: deque[str]
    stages: deque[tuple[str, ...]]
    matches: deque[tuple[str, list[StageMatch]]]
    scores: deque[float]
    count: int = 0
    level: int = 0  # 0 nothing sent, 1 child notice, 2 moderator finding
    alerted_risk: float = 0.0
    alerted_stages: frozenset[str] = field(default_factory=frozenset)


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
    ) -> None:
        self.settings = settings
        if classifier is None:
            # Loaded here so a missing or corrupt model stops start-up with a clear ModelError.
            classifier = OnnxClassifier(Path(settings.model_path)) if settings.model_path else load_default_classifier()
        self.classifier = classifier
        self.tagger = tagger if tagger is not None else default_tagger()
        self._conversations: OrderedDict[tuple[str, str, str, str], _Conversation] = OrderedDict()

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        """Score a message from a possible adult to minor recipients; findings on threshold crossings."""
        if not isinstance(event, MessageSent | MessageEdited):
            return ()
        author = await state.account(event.community, event.author)
        if not author.may_be_adult:
            return ()
        children = await self._minor_recipients(event, state)
        if not children:
            return ()
        folded = normalize(event.text)
        if folded.empty:
            return ()
        text = folded.text[:STORED_CHARS]
        matches = self.tagger.tag(text)
        message_stages = tuple(s for s in STAGES if any(m.stage == s for m in matches))
        convs = []
        for child in children:
            conv = self._conversation((event.community, event.conversation, event.author, child))
            conv.texts.append(text)
            conv.message_ids.append(event.message_id)
            conv.stages.append(message_stages)
            if matches:
                conv.matches.append((event.message_id, matches))
            conv.count += 1
            convs.append((child, conv))
        # One batched call for every child this message reached; the model runs off the loop.
        windows = ["\n".join(conv.texts) for _, conv in convs]
        scores = await asyncio.to_thread(self.classifier.classify, windows)
        findings = []
        for (child, conv), score in zip(convs, scores, strict=True):
            conv.scores.append(score)
            finding = self._judge(event, child, conv)
            if finding is not None:
                findings.append(finding)
        return findings

    async def _minor_recipients(self, event: MessageSent | MessageEdited, state: DetectorState) -> list[str]:
        if isinstance(event, MessageSent):
            candidates = [r for r in event.recipients[:10] if r != event.author]
        else:
            # Edits carry no recipients: reuse the children already seen in this conversation.
            candidates = [
                key[3]
                for key in self._conversations
                if key[0] == event.community and key[1] == event.conversation and key[2] == event.author
            ]
        children = []
        for recipient in candidates:
            if (await state.account(event.community, recipient)).is_minor:
                children.append(recipient)
        return children

    def _conversation(self, key: tuple[str, str, str, str]) -> _Conversation:
        conv = self._conversations.get(key)
        if conv is None:
            n = self.settings.window_messages
            conv = _Conversation(
                deque(maxlen=n), deque(maxlen=n), deque(maxlen=n), deque(maxlen=n), deque(maxlen=self.settings.smooth)
            )
            self._conversations[key] = conv
            while len(self._conversations) > self.settings.max_conversations:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(key)
        return conv

    def _judge(self, event: MessageSent | MessageEdited, child: str, conv: _Conversation) -> Finding | None:
        s = self.settings
        if conv.count < s.min_messages:
            return None
        risk = conversation_risk(list(conv.scores), list(conv.stages), s.smooth, self.tagger)
        seen = frozenset(stage for stages in conv.stages for stage in stages)
        level = 2 if risk >= s.moderator_threshold else 1 if risk >= s.child_notice_threshold else 0
        if level == 0:
            return None
        refresh = (
            level == 2
            and conv.level == 2
            and (risk >= conv.alerted_risk + s.rise_to_update or not seen <= conv.alerted_stages)
        )
        if level <= conv.level and not refresh:
            return None
        notify = conv.level == 0  # the child hears once per conversation; NoticeBook rate-limits too
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
        named = ", ".join(st.replace("_", " ") for st in stages) or "no specific stage"
        if level == 1:
            return Finding(
                detector=self.name,
                platform=event.platform,
                community=event.community,
                suspect=event.author,
                score=min(risk, s.child_only_score),
                reason=f"messages to an under-18 account read like grooming ({named})",
                evidence=tuple(
                    Evidence(kind="message", ref=m, label="scored message") for m in list(conv.message_ids)[-3:]
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
            reason=f"grooming language towards an under-18 account, risk {risk:.2f}: {named}"[:500],
            evidence=(
                Evidence(
                    kind="conversation",
                    ref=event.conversation,
                    label=f"{conv.count} messages to the child; stages seen: {named}"[:300],
                ),
                *self._excerpts(conv),
            ),
            at=event.at,
            event_key=event.key,
            child=child,
            notify_child=notify,
            stages=stages,
        )

    def _excerpts(self, conv: _Conversation) -> list[Evidence]:
        # Minimal evidence: only the matched phrase of each stage, one per stage, newest
        # first, so moderators see why without reading the whole conversation here.
        out: list[Evidence] = []
        shown: set[str] = set()
        for message_id, matches in reversed(conv.matches):
            for m in matches:
                if m.stage in shown or len(out) >= self.settings.max_excerpts:
                    continue
                shown.add(m.stage)
                excerpt = m.span[: self.settings.excerpt_chars]
                out.append(Evidence(kind="message", ref=message_id, label=f"{m.stage.replace('_', ' ')}: “{excerpt}”"))
        return out

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop remembered text of conversations where `account` is suspect or child."""
        for key in [
            k for k in self._conversations if account in (k[2], k[3]) and (community is None or k[0] == community)
        ]:
            del self._conversations[key]
