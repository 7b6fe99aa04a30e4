"""Grooming-stage tagging: which stages a message shows, with the matched spans (lexicons live in models/stages.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import groomguard.models
from groomguard.text import FoldedText, fold

__all__ = [
    "DEFAULT_STAGES_PATH",
    "STAGES",
    "StageDefinition",
    "StageError",
    "StageMatch",
    "StageTagger",
    "default_tagger",
]

DEFAULT_STAGES_PATH: Final = Path(groomguard.models.__file__).resolve().parent / "stages.toml"

#: Every stage the lexicon file must define, in the order a grooming conversation tends to
#: move through them (used to order tags and explain progressions).
STAGES: Final = (
    "rapport",
    "personal_info",
    "secrecy",
    "isolation",
    "gifts",
    "off_platform",
    "photos",
    "sexual",
    "meeting",
)


class StageError(ValueError):
    """The stage lexicon file is missing, unreadable or has a bad pattern."""


@dataclass(frozen=True, slots=True)
class StageMatch:
    """One stage seen in one message: offsets index the *folded* text (see groomguard.text)."""

    stage: str
    start: int
    end: int
    span: str


@dataclass(frozen=True, slots=True)
class StageDefinition:
    """One stage's compiled lexicon plus the weights the conversation risk uses."""

    name: str
    summary: str
    weight: float
    escalation: bool
    regex: re.Pattern[str]


class StageTagger:
    """Tags folded text with grooming stages; one compiled alternation per stage."""

    def __init__(self, definitions: tuple[StageDefinition, ...], version: int = 0) -> None:
        self.definitions = definitions
        self.version = version
        self.by_name = {d.name: d for d in definitions}
        #: Stages whose appearance after probing is the pattern that matters most.
        self.escalation = frozenset(d.name for d in definitions if d.escalation)

    @classmethod
    def from_file(cls, path: Path = DEFAULT_STAGES_PATH) -> StageTagger:
        """Load and compile a lexicon file; errors name the file and the stage at fault."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StageError(f"cannot read stage lexicon {path}: {exc}") from exc
        stages = data.get("stages", {})
        missing = [s for s in STAGES if s not in stages]
        if missing:
            raise StageError(f"stage lexicon {path} lacks stages: {', '.join(missing)}")
        definitions = []
        for name in STAGES:
            table = stages[name]
            patterns = table.get("patterns", [])
            if not patterns:
                raise StageError(f"stage {name!r} in {path} has no patterns")
            joined = "|".join(f"(?:{p})" for p in patterns)
            try:
                # Word-ish boundaries that also work next to the _phone_-style typed tokens.
                regex = re.compile(rf"(?<![a-z0-9])(?:{joined})(?![a-z0-9])")
            except re.error as exc:
                raise StageError(f"bad pattern in stage {name!r} of {path}: {exc}") from exc
            definitions.append(
                StageDefinition(
                    name=name,
                    summary=str(table.get("summary", name)),
                    weight=float(table.get("weight", 0.1)),
                    escalation=bool(table.get("escalation", False)),
                    regex=regex,
                )
            )
        return cls(tuple(definitions), version=int(data.get("version", 0)))

    def tag(self, text: str | FoldedText) -> list[StageMatch]:
        """All stage matches in `text` (raw text is folded first), in text order per stage."""
        folded = text.text if isinstance(text, FoldedText) else fold(text).text
        if not folded:
            return []
        matches: list[StageMatch] = []
        for definition in self.definitions:
            for m in definition.regex.finditer(folded):
                if m.end() > m.start():
                    matches.append(StageMatch(definition.name, m.start(), m.end(), m.group(0)))
        return matches

    def stages(self, text: str | FoldedText) -> tuple[str, ...]:
        """Just the distinct stage names seen, in stage order."""
        folded = text.text if isinstance(text, FoldedText) else fold(text).text
        if not folded:
            return ()
        return tuple(d.name for d in self.definitions if d.regex.search(folded))


@lru_cache(maxsize=1)
def default_tagger() -> StageTagger:
    """The tagger for the shipped lexicon, compiled once per process."""
    return StageTagger.from_file(DEFAULT_STAGES_PATH)
