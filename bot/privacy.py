"""Erasure helpers: find and scrub one account id wherever it appears inside text (ids, JSON, reasons).

Used by the stores' `forget` (a sweep of every table, adapters' tables included) and by the in-memory
`forget` of cases, notices and state, so an erased id is left nowhere, not only in the columns that
name accounts. An id matches where it is not continued by a letter or digit on either side: "kid5"
is found in "dm-adult-kid5" and in '"kid5"', not inside "kid50".
"""

from __future__ import annotations

import json
import re
import secrets
from functools import lru_cache
from typing import Any

#: What an erased id is replaced with inside text that is kept (another suspect's reason, a card).
ERASED = "[erased]"


@lru_cache(maxsize=64)
def _pattern(account: str) -> re.Pattern[str]:
    forms = {account, json.dumps(account)[1:-1]}  # raw, and as json.dumps escapes it (non-ASCII ids)
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def needles(account: str) -> list[str]:
    """The substrings a database search must look for (raw and JSON-escaped forms)."""
    return sorted({account, json.dumps(account)[1:-1]})


def mentions(text: str, account: str) -> bool:
    """Whether `text` contains the id as a whole id."""
    return _pattern(account).search(text) is not None


def erasure_placeholder() -> str:
    """A fresh placeholder for one erasure in the database ("[erased:3f9c0a1b2d4e]").

    Ids embed other ids (conversation "dm-adult-kid5", action "notice:...:kid5") and some of those are keys:
    with one fixed ERASED, the rows of two erased kids become one key (a unique violation, or SQLite's
    REPLACE dropping a row). One placeholder per erasure keeps distinct rows distinct and the rows of one
    erasure still joined. Random, never derived from the id: a hash could be matched against a guessed id.
    """
    return f"[erased:{secrets.token_hex(6)}]"


def scrub(text: str, account: str, placeholder: str = ERASED) -> str:
    """`text` with every occurrence of the id replaced by `placeholder` (ERASED unless told)."""
    return _pattern(account).sub(placeholder, text)


def scrub_value(value: Any, account: str) -> Any:
    """A JSON-like value with the id scrubbed from every string in it (keys too)."""
    if isinstance(value, str):
        return scrub(value, account)
    if isinstance(value, list):
        return [scrub_value(v, account) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_value(v, account) for v in value)
    if isinstance(value, dict):
        return {scrub_value(k, account): scrub_value(v, account) for k, v in value.items()}
    return value
