"""Erasure helpers: find and scrub one account id wherever it appears inside text (ids, JSON, reasons).

Used by the stores' `forget` (a sweep of every table, adapters' tables included) and by the in-memory
`forget` of cases, notices and state, so an erased id is left nowhere, not only in the columns that
name accounts. An id matches where it is not continued by a letter or digit on either side: "kid5"
is found in "dm-adult-kid5" and in '"kid5"', not inside "kid50".
"""

from __future__ import annotations

import json
import re
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


def scrub(text: str, account: str) -> str:
    """`text` with every occurrence of the id replaced by ERASED."""
    return _pattern(account).sub(ERASED, text)


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
