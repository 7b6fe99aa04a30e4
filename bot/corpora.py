"""Readers for the training and evaluation corpora in ../shared/data, and the one split rule they share.

Used by `models/train.py` (fitting and calibration) and by `groomguard eval --corpus` (measuring the
shipped model the way the product uses it). Nothing here is needed at run time by the bot itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import groomguard.models

__all__ = [
    "DEFAULT_DATA_DIR",
    "EVAL_ONLY",
    "FIT_SOURCES",
    "SEED",
    "SPLITS",
    "SYNTHETIC_DIR",
    "Conversation",
    "clean_placeholders",
    "load_chitchat",
    "load_negatives",
    "load_pj",
    "load_probes",
    "load_synthetic",
    "split_of",
]

SEED: Final = 20_260_514
DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parents[2] / "shared" / "data"
SYNTHETIC_DIR: Final = Path(groomguard.models.__file__).resolve().parent / "synthetic"
PROBES_DIR: Final = Path(groomguard.models.__file__).resolve().parent / "probes"
SPLITS: Final = (("train", 0.70), ("val", 0.15), ("test", 0.15))
#: Sources the shipped model may be fitted and calibrated on (their held-back split is evaluation).
FIT_SOURCES: Final = ("pj", "sms", "irc", "chitchat", "synthetic_acb", "synthetic_aaf")
#: Sources whose licence (or lack of one) allows measuring only: never fitted or calibrated on.
EVAL_ONLY: Final = ("nps", "conda")
#: SMS lines are single texts with no thread: this many consecutive ones form one pseudo-conversation
#: (and one split unit), so windows of several lines exist for the negative class too.
SMS_GROUP: Final = 12

_NEGATIVE_FILES: Final = {
    "sms": ("sms_ham.jsonl", None),
    "irc": ("ubuntu_irc.jsonl", "log_file"),
    "nps": ("nps_chat.jsonl", "session"),
    "conda": ("conda_dota2.jsonl", "match_id"),
}


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation: the scored speaker's lines, the other side's, and what unit it splits by."""

    id: str
    source: str
    label: int
    lines: tuple[str, ...]
    other: tuple[str, ...] = ()
    #: True when `other` holds both sides in order (so windows can mix speakers faithfully).
    interleaved: bool = False
    #: The session / log / match the conversation belongs to: splits never cut one.
    group: str = ""
    lang: str = "en"
    kind: str = ""


_PLACEHOLDERS: Final = (
    (re.compile(r"<user>:?,?"), " "),
    (re.compile(r"<url>"), " _url_ "),
    (re.compile(r"<email>"), " _email_ "),
    (re.compile(r"<(?:number|ip)>"), " _phone_ "),
)


def clean_placeholders(text: str) -> str:
    """Map the corpora's anonymisation tags to what live text folds to (names vanish, contacts are typed).

    Why: PJ has no `<user>` tags and the negatives are full of them; left in, the model would learn
    "mentions <user>" = benign, which says nothing about live chat.
    """
    for pattern, replacement in _PLACEHOLDERS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def split_of(unit: str) -> str:
    """Deterministic split by conversation/session id, so no unit straddles two splits."""
    digest = hashlib.sha256(f"{SEED}:{unit}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, fraction in SPLITS:
        cumulative += fraction
        if u < cumulative:
            return name
    return SPLITS[-1][0]


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            if raw.strip():
                yield json.loads(raw)


def load_pj(path: Path) -> list[Conversation]:
    """Perverted Justice transcripts: the offender's lines are the positive speaker."""
    out = []
    for item in _jsonl(path):
        lines = tuple(str(x) for x in item.get("offender", []) if str(x).strip())  # type: ignore[attr-defined]
        decoy = tuple(str(x) for x in item.get("decoy", []) if str(x).strip())  # type: ignore[attr-defined]
        if len(lines) >= 3:
            out.append(Conversation(str(item["id"]), "pj", 1, lines, decoy, False, group=str(item["id"])))
    return out


def load_negatives(data_dir: Path, source: str) -> list[Conversation]:
    """One of the real-chat negative files (`sms`, `irc`, `nps`, `conda`), grouped by session."""
    name, group_field = _NEGATIVE_FILES[source]
    rows = list(_jsonl(data_dir / "negatives" / name))
    out = []
    if source == "sms":
        for start in range(0, len(rows), SMS_GROUP):
            chunk = rows[start : start + SMS_GROUP]
            lines = tuple(clean_placeholders(str(r["text"])) for r in chunk)
            ident = f"sms-{start // SMS_GROUP:04d}"
            out.append(Conversation(ident, "sms", 0, tuple(x for x in lines if x), group=ident))
        return out
    for r in rows:
        messages = tuple(clean_placeholders(str(m)) for m in r.get("messages", ()))  # type: ignore[attr-defined]
        messages = tuple(m for m in messages if m)
        if messages:
            group = str(r.get(group_field) or r["id"]) if group_field else str(r["id"])
            out.append(Conversation(str(r["id"]), source, 0, messages, messages, True, group=f"{source}:{group}"))
    return out


def load_chitchat() -> list[Conversation]:
    """Ordinary open-domain chat (chitchat-dataset, a training extra): the first sender is scored."""
    import chitchat_dataset

    out = []
    for key, conv in chitchat_dataset.Dataset().items():
        messages = [m for turn in conv["messages"] for m in turn]
        if not messages:
            continue
        first = messages[0]["sender"]
        mine = tuple(m["text"] for m in messages if m["sender"] == first and m["text"].strip())
        both = tuple(m["text"] for m in messages if m["text"].strip())
        if mine:
            out.append(Conversation(f"cc-{key}", "chitchat", 0, mine, both, True, group=f"cc-{key}"))
    return out


def load_synthetic(directory: Path = SYNTHETIC_DIR) -> list[Conversation]:
    """Hand-written hard negatives: benign adult→child chat and adult↔adult flirting or sex talk."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        source = "synthetic_acb" if "child" in path.stem else "synthetic_aaf"
        for item in _jsonl(path):
            ident = str(item["id"])
            lines = tuple(str(x) for x in item["lines"])  # type: ignore[attr-defined]
            out.append(Conversation(ident, source, 0, lines, group=ident, kind=str(item.get("role", ""))))
    return out


def load_probes(directory: Path = PROBES_DIR) -> list[Conversation]:
    """Hand-written probe conversations per language (`models/probes/<lang>.jsonl`): evaluation only."""
    out = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.jsonl")):
        for item in _jsonl(path):
            ident = str(item["id"])
            lang = str(item.get("lang", path.stem))
            lines = tuple(str(x) for x in item["lines"])  # type: ignore[attr-defined]
            label = int(item["label"])  # type: ignore[call-overload]
            out.append(
                Conversation(
                    ident, f"probe_{lang}", label, lines, group=ident, lang=lang, kind=str(item.get("kind", ""))
                )
            )
    return out
