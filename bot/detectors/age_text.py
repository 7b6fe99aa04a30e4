"""age_text: a self-stated age in a message ("im 13", "13 y/o", "13f", "year 8") marks the author a likely minor."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import ClassVar

from groomguard.detectors.base import DetectorSettings, DetectorState, StoreBackedDetector
from groomguard.events import AgeBand, BaseEvent, MessageEdited, MessageSent
from groomguard.findings import Finding
from pydantic import Field

log = logging.getLogger(__name__)

_SELF = r"(?:i'?m|i am|iam)"
#: Words after a number that make it something other than an age ("im 13 mins away", "im 12th").
_NOT_AGE = (
    r"(?!\s*(?:[:.,/]\d|['\"]|%|\+|\$|£|€|x\b|(?:-|\s)?(?:min|minute|hour|hr|sec|second|day|week|month|km|k\b|mile|mi\b|ft|feet|"
    r"inch|cm|kg|lb|pound|dollar|buck|euro|quid|percent|am\b|pm\b|th\b|st\b|nd\b|rd\b|time|level|lvl|point|pt|"
    r"game|win|kill|of\b|out\b|more|less|behind|ahead|away|left|late|early)))"
)
#: (pattern, offset): the first group is a number; age = number + offset (school years and grades).
PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(rf"\b{_SELF}\s+(?:only\s+|just\s+|nearly\s+|almost\s+)?(\d{{1,2}})\b{_NOT_AGE}"), 0),
    (re.compile(rf"\bmy age is\s+(\d{{1,2}})\b{_NOT_AGE}"), 0),
    (re.compile(rf"(?:^|\b{_SELF}\s+)(\d{{1,2}})\s*(?:y/?o|yrs?\s*old|years?\s*old)\b"), 0),
    (re.compile(rf"(?:^|\b{_SELF}\s+|\basl\W*)(\d{{1,2}})\s?/?\s?[fm]\b"), 0),
    (re.compile(rf"\b{_SELF}\s+in\s+year\s+(\d{{1,2}})\b"), 4),
    (re.compile(rf"\b{_SELF}\s+in\s+(?:grade\s+(\d{{1,2}})\b|(\d{{1,2}})(?:st|nd|rd|th)\s+grade\b)"), 5),
    (re.compile(rf"\b{_SELF}\s+an?\s+(\d{{1,2}})(?:st|nd|rd|th)\s+grader\b"), 5),
)


class AgeTextSettings(DetectorSettings):
    """Bounds for age_text; a stated age only ever tightens protection."""

    min_age: int = Field(
        8, ge=5, le=17, description="youngest stated age believed; lower catches young children, misreads more numbers"
    )
    max_age: int = Field(
        17, ge=5, le=17, description="oldest stated age that marks a minor; never above 17, text never marks an adult"
    )


_DIGIT = re.compile(r"\d")


def stated_age(text: str) -> int | None:
    """The age a message says its author is, if it says one plainly; None otherwise."""
    if _DIGIT.search(text) is None:
        return None  # every pattern needs a number: most chat lines stop here
    lowered = text.lower().replace("\u2019", "'")
    for pattern, offset in PATTERNS:
        match = pattern.search(lowered)
        if match:
            number = next(g for g in match.groups() if g is not None)
            return int(number) + offset
    return None


class AgeTextDetector(StoreBackedDetector[AgeTextSettings]):
    """Marks an unknown-age author as a likely minor when they state an under-18 age; never relaxes anything."""

    name: ClassVar[str] = "age_text"

    #: The only event types this detector reads; the engine feeds it nothing else.
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (
        MessageSent,
        MessageEdited,
    )

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, MessageSent | MessageEdited) or not event.text:
            return ()
        age = stated_age(event.text)
        if age is None or not self.settings.min_age <= age <= self.settings.max_age:
            return ()
        account = await state.account(event.community, event.author)
        if account.band is AgeBand.UNKNOWN and state.infer_minor(event.community, event.author, age, event.at):
            log.info("age_text: %s in %s marked a likely minor (event %s)", event.author, event.community, event.key)
        return ()
