"""Text folding shared by every reader of message text, so formatting tricks fold to one shape.

The core *folds* text (`fold`, `fold_text`: case, lookalikes, leetspeak, spaced letters, contact tokens);
adapters *strip markup* (`strip_markup` in each adapter's translate module: a platform's own mention
and formatting syntax) before text becomes an event. Two steps, two names, never one for the other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_MAX_CHARS",
    "FOLD_VERSION",
    "FoldedText",
    "TypedToken",
    "content_words",
    "fold",
    "fold_text",
    "model_text",
    "words",
]

#: Bump when the output of `fold` changes: the model metadata records it so a model
#: trained under one fold is never silently served under another (models record it as `normalization.version`).
FOLD_VERSION: Final = 2

#: Longest text we look at. Chat lines are far shorter; a pasted megabyte is cut here before
#: any regex runs, so cost stays bounded whatever arrives.
DEFAULT_MAX_CHARS: Final = 8192

TokenKind = Literal["url", "email", "handle", "phone"]


@dataclass(frozen=True, slots=True)
class TypedToken:
    """A contact-like token lifted out of the text (its value is personal data: never log it)."""

    kind: TokenKind
    value: str


@dataclass(frozen=True, slots=True)
class FoldedText:
    """The folded text the model and the stage lexicons read, plus what was lifted out of it."""

    text: str
    tokens: tuple[TypedToken, ...] = ()
    truncated: bool = False
    #: The input looked like binary data (many control or undecodable characters); `text` is "".
    binary: bool = False

    @property
    def empty(self) -> bool:
        """True when nothing scoreable is left (empty, emoji-only, binary)."""
        return not self.text.strip()


def _removal_table() -> dict[int, str | None]:
    """Zero-width, bidi, soft-hyphen, variation-selector and tag characters vanish; controls
    become spaces so that words they separated stay separate."""
    table: dict[int, str | None] = {}
    for cp in range(0x00, 0x20):
        table[cp] = " "
    table[0x7F] = " "
    for cp in range(0x80, 0xA0):
        table[cp] = " "
    for cp in (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF):
        table[cp] = None
    for start, end in ((0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0xFE00, 0xFE0F)):
        for cp in range(start, end + 1):
            table[cp] = None
    for cp in range(0xE0000, 0xE0080):  # tag characters (used to hide text inside emoji)
        table[cp] = None
    table[0x2028] = " "
    table[0x2029] = " "
    table[0xFFFD] = " "
    for cp in range(0xD800, 0xE000):  # lone surrogates cannot be encoded for the model
        table[cp] = " "
    return table


_REMOVE: Final = _removal_table()

# Lookalikes that NFKC leaves alone: Cyrillic and Greek letters that render like Latin ones.
_HOMOGLYPHS: Final = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "һ": "h",
        "ӏ": "l",
        "ɡ": "g",
        "ɑ": "a",
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "ς": "c",
        "μ": "u",
        "ı": "i",
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ħ": "h",
        "ŧ": "t",
        "ß": "ss",
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "―": "-",
    }
)

_URL_RE: Final = re.compile(
    r"(?:https?://|www\.)[^\s<>\"']+"
    r"|\b[a-z0-9][a-z0-9-]{0,62}\.(?:com|net|org|io|gg|me|ly|co|uk|tv|app|link|xyz|info|to)"
    r"(?:/[^\s<>\"']*)?(?![a-z0-9])"
)
_EMAIL_RE: Final = re.compile(r"\b[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+\b")
_HANDLE_RE: Final = re.compile(r"(?<![\w.@])@[a-z0-9_.]{2,32}")
# Eight or more digits with the usual separators: long enough to skip ages, times and prices.
_PHONE_RE: Final = re.compile(r"(?<![\w])\+?\d(?:[\s().-]{0,2}\d){7,14}(?![\w])")

# Runs of single characters separated by one and the same separator: "s n a p", "s.n.a.p", "k-i-k".
# One separator per run, so "d.o.n.t t.e.l.l" folds to two words and "a p*i*c" keeps its "a".
_SPACED_RE: Final = re.compile(r"(?<![\w*])[a-z0-9]([ .\-_*])[a-z0-9](?:\1[a-z0-9])+(?![\w*])")
# Three-letter runs collide with ordinary chat ("u r a"); join them only for these words.
_SHORT_JOINS: Final = frozenset(
    {"kik", "sex", "pic", "pix", "cam", "dm", "ig", "sms", "nud", "xxx", "bra", "age", "mom", "dad"}
)

# A word with a letter and a leetspeak digit or symbol in it (pure numbers stay numbers).
_LEET_WORD_RE: Final = re.compile(r"(?<![\w$@])(?=[a-z0-9$@!]*[a-z])(?=[a-z$@!]*[0-9$@])[a-z0-9$@!]+")
# Ages, ordinals, times and sizes that look like leetspeak but are not: 13yo, 14f, 2nd, 5pm, ps5.
# Ordinals must be real ones ("53nd" is leet for "send"), and a letter run before digits needs two
# letters ("mp3", "ps5" stay; "m3" is leet for "me").
_NOT_LEET_RE: Final = re.compile(
    r"\d+(?:yo|yrs?|y|m|f|s|am|pm|k|x|h|hrs?|min|mins)?|\d*(?:1st|2nd|3rd|[04-9]th|1[1-3]th)|[a-z]{2,}\d+"
)
_LEET: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "$": "s", "@": "a", "!": "i"}
)
_LETTER8_RE: Final = re.compile(r"(?<=[a-z])8")

_SPACES_RE: Final = re.compile(r"\s+")
_NON_ASCII_RE: Final = re.compile(r"[^\x00-\x7f]")


def _decode(raw: str | bytes | bytearray | memoryview) -> str:
    if isinstance(raw, str):
        return raw
    # Undecodable bytes become U+FFFD, which the binary check below counts.
    return bytes(raw[: DEFAULT_MAX_CHARS * 4]).decode("utf-8", errors="replace")


def _looks_binary(text: str) -> bool:
    sample = text[:1024]
    if not sample:
        return False
    bad = sum(1 for ch in sample if ch == "\ufffd" or (ch < " " and ch not in "\t\n\r") or ch == "\x7f")
    return bad * 10 > len(sample)


def _strip_marks(text: str) -> str:
    # Only runs on non-ASCII text: drops accents and "zalgo" combining marks so s̶e̶x matches sex.
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_NON_ASCII_WORD_RE: Final = re.compile(r"\S*[^\x00-\x7f]\S*")
_ASCII_LETTER_RE: Final = re.compile(r"[a-z]")


def _fold_homoglyphs(match: re.Match[str]) -> str:
    # Fold lookalikes only where they disguise a Latin word: a word that mixes scripts, or
    # one made wholly of confusable letters. Real Cyrillic or Greek words are left readable.
    word = match.group(0)
    folded = word.translate(_HOMOGLYPHS)
    if _ASCII_LETTER_RE.search(word) or not _NON_ASCII_RE.search(folded):
        return folded
    return word


def _join_spaced(match: re.Match[str]) -> str:
    run = match.group(0)
    joined = run[::2]
    if match.group(1) == " " and joined.isdigit():
        return run  # "1 2 3" stays numbers; a spaced phone number is caught by _PHONE_RE
    if len(joined) >= 4 or joined in _SHORT_JOINS:
        return joined
    return run


def _fold_leet(match: re.Match[str]) -> str:
    # "l8r", "m8", "gr8": an 8 after a letter reads "ate".
    word = _LETTER8_RE.sub("ate", match.group(0))
    if _NOT_LEET_RE.fullmatch(word):
        return word
    # Trailing "!" is punctuation, not an "i".
    tail = ""
    while word.endswith("!"):
        word, tail = word[:-1], tail + " "
    return word.translate(_LEET) + tail


def fold(raw: str | bytes, max_chars: int = DEFAULT_MAX_CHARS) -> FoldedText:
    """Fold `raw` to lower-case ASCII-leaning text with contact tokens typed, never raising.

    Order matters: invisible characters go first (they split words), then case and
    lookalikes, then contact tokens are lifted out before leetspeak folding could mangle
    them, then spaced-out words are joined and leetspeak folded. The model and the stage
    lexicons read exactly this output, so sklearn training and ONNX serving see the same text.
    """
    try:
        text = _decode(raw)
    except Exception:  # a bytes-like object we cannot read is treated as binary
        return FoldedText(text="", binary=True)
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars]
    if _looks_binary(text):
        return FoldedText(text="", truncated=truncated, binary=True)
    text = unicodedata.normalize("NFKC", text).translate(_REMOVE).lower()
    if _NON_ASCII_RE.search(text):
        text = _NON_ASCII_WORD_RE.sub(_fold_homoglyphs, _strip_marks(text))

    tokens: list[TypedToken] = []

    def lift(kind: TokenKind) -> Callable[[re.Match[str]], str]:
        def repl(m: re.Match[str]) -> str:
            tokens.append(TypedToken(kind, m.group(0)))
            return f" _{kind}_ "

        return repl

    if "@" in text:
        text = _EMAIL_RE.sub(lift("email"), text)
    if "." in text:
        text = _URL_RE.sub(lift("url"), text)
    if "@" in text:
        text = _HANDLE_RE.sub(lift("handle"), text)
    text = _SPACED_RE.sub(_join_spaced, text)
    if _has_digit_run(text):
        text = _PHONE_RE.sub(lift("phone"), text)
    text = _LEET_WORD_RE.sub(_fold_leet, text)
    text = _SPACES_RE.sub(" ", text).strip()
    return FoldedText(text=text, tokens=tuple(tokens), truncated=truncated)


_DIGITS8_RE: Final = re.compile(r"\d(?:\D{0,2}\d){7}")


def _has_digit_run(text: str) -> bool:
    return _DIGITS8_RE.search(text) is not None


def fold_text(raw: str | bytes, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Just the folded text: what the classifier and the training pipeline feed the model."""
    return fold(raw, max_chars).text


#: Acknowledgements, fillers, laughter and greetings: they mark a register, not a topic. The model
#: never sees them (`model_text` drops them), so "ok lol" cannot read as grooming because the
#: training positives happen to be 2000s instant-messenger chat.
_FILLER_WORDS: Final = """
    ok okay okey oki okie k kk kay mk mkay yes yeah yea ya yah yep yup yeh ye no nah nope naw sure
    lol lolol lool lmao lmfao rofl haha hahaha hahahaha hah ha hehe hehehe heh hihi xd xx xo lel kek
    omg omfg wow woah whoa hmm hm hmmm mm mmm uh uhh um umm er erm ah ahh oh ohh ooh eh meh huh
    cool nice great awesome kewl neat sweet fine alright aight ight thx thanks thank ty tysm np
    brb gtg g2g ttyl bbl afk gg wp ggwp idk idc ikr imo tbh ngl smh fr btw
    hi hii hiii hey heya hiya hello yo sup wassup wazzup howdy bye byee cya
"""
FILLERS: Final = frozenset(_FILLER_WORDS.split())

#: Function words: they carry meaning only next to a content word ("are you alone"), so a message
#: made of nothing else ("u?", "me too", "and you") carries no evidence on its own.
_FUNCTION_WORDS: Final = """
    a an the and or but so if then than too also just very really rly pretty quite
    i me my mine im i'm ive i've id i'd ill i'll you u ya ur your yours youre you're yall
    he him his she her hers it its it's we us our they them their this that these those there here
    is am are r was were be been being do does did doing done have has had having
    to of in on at by for from with w about as up down out off over into
    what wat wut why how who when where which whats what's thats that's
    not dont don't cant can't wont won't didnt didn't isnt isn't
    can could will would should shall may might must
"""
FUNCTION_WORDS: Final = frozenset(_FUNCTION_WORDS.split())

_WORD_RE: Final = re.compile(r"[a-z0-9_']+")
_MODEL_TOKEN_RE: Final = re.compile(r"[a-z0-9_]+")


def words(folded: str) -> list[str]:
    """The word tokens of folded text, as the model's word features see them."""
    return _WORD_RE.findall(folded)


def content_words(folded: str) -> list[str]:
    """Words that can carry evidence: not fillers, not function words, not a lone letter."""
    return [w for w in _WORD_RE.findall(folded) if w not in FILLERS and w not in FUNCTION_WORDS and len(w) > 1]


def model_text(folded: str) -> str:
    """The content words of folded text: exactly what the text model reads, in training and serving.

    Only word tokens survive, minus fillers ("ok", "lol"), function words ("you", "are", "i") and
    lone letters; numbers stay (ages matter). Punctuation, emoticons and apostrophes go: all of these
    mark a register ("..", ":P"), and a model that could see them learned "chats informally" =
    grooming. (Dropping "#" also keeps onnxruntime's "#" padding from ever matching a feature.)
    """
    return " ".join(
        w
        for w in _MODEL_TOKEN_RE.findall(folded.replace("'", ""))
        if w not in FILLERS and w not in FUNCTION_WORDS and (len(w) > 1 or w.isdigit())
    )
