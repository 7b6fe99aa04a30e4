"""Routes each message to a language: English to the shipped model, covered languages to the
multilingual scorer, everything else to "not scored: <language>" (never a number)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from groomguard.classifier import TextClassifier
from groomguard.stages import StageTagger
from groomguard.text import content_words

__all__ = ["LanguageRouting", "MultilingualAdapter", "default_router"]

log = logging.getLogger(__name__)


class MultilingualAdapter:
    """Gives the multilingual scorer the `TextClassifier` shape the detector calls."""

    def __init__(self, scorer: Any, base_rate: float = 0.1) -> None:
        self.scorer = scorer
        self.base_rate = base_rate

    def informative(self, folded: str) -> bool:
        """Any content word (the encoder has no closed vocabulary)."""
        return bool(content_words(folded))

    def classify(self, texts: Sequence[str]) -> list[float]:
        """Calibrated probabilities for windows of raw lines joined by newlines."""
        return [float(x) for x in self.scorer.classify(list(texts))]

    def classify_folded(self, texts: Sequence[str]) -> list[float]:
        """The multilingual windows are kept raw, so this is `classify`."""
        return self.classify(texts)


class LanguageRouting:
    """The detector's `LanguageRouter`: language id per message, scorers per covered language."""

    def __init__(self, identifier: Any | None, scorer: Any | None) -> None:
        self.identifier = identifier
        self.scorer = scorer
        self._classifier = MultilingualAdapter(scorer) if scorer is not None else None

    def language(self, text: str, recent: Sequence[str] = ()) -> tuple[str, str]:
        """("en", "English") unless a reliable guess names another language.

        `recent` are the speaker's previous lines in this conversation: a short Latin-script line
        ("hola", "ok tot morgen") takes the conversation's language instead of its own unreliable guess.
        """
        if self.identifier is None:
            return "en", "English"
        if recent:
            from groomguard.langid import ConversationLanguage

            guess = ConversationLanguage(lines=recent, identifier=self.identifier).add(text)
        else:
            guess = self.identifier.detect(text)
        if guess.english_or_unknown:
            return "en", "English"
        return guess.code, guess.name

    def covers(self, code: str) -> bool:
        """True when the multilingual scorer is loaded and covers `code`."""
        return self.scorer is not None and code in self.scorer.languages

    def classifier(self, code: str) -> TextClassifier:
        """The multilingual scorer (one model for every covered language)."""
        assert self._classifier is not None, f"{code} is not covered"
        return self._classifier  # type: ignore[return-value]

    def forget(self) -> None:
        """Clear the scorer's cache of recent lines (called on every erasure request)."""
        if self.scorer is not None:
            self.scorer.forget()

    def second_opinion(self) -> TextClassifier | None:
        """The multilingual scorer, which also reads English (its head was trained on English data)."""
        return self._classifier  # type: ignore[return-value]

    def tagger(self, code: str) -> StageTagger:
        """The stage lexicon of a covered language."""
        assert self.scorer is not None
        tagger: StageTagger = self.scorer.tagger(code)
        return tagger


@lru_cache(maxsize=1)
def default_router() -> LanguageRouting:
    """Language id and the multilingual scorer when their packages are installed; degrade loudly otherwise."""
    identifier = scorer = None
    try:
        from groomguard.langid import language_identifier

        identifier = language_identifier()
    except Exception as exc:  # a missing or broken package must not stop English detection
        log.warning("language identification unavailable (%s): every message is read as English", exc)
    try:
        from groomguard.multilingual import load_multilingual_scorer

        scorer = load_multilingual_scorer()
    except Exception as exc:
        log.warning("multilingual scorer unavailable (%s): non-English messages are reported 'not scored'", exc)
    return LanguageRouting(identifier, scorer)
