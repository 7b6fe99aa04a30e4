"""Parsing `!gg` commands and moderator reactions into typed requests; no I/O, no decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from groomguard.events import AgeBand, Decision

USER_ID = re.compile(r"^@[^:\s]+:\S+$")
MIN_AGE, MAX_AGE = 5, 120

#: Reaction keys (variation selectors stripped) → what a moderator means by them.
REACTIONS: dict[str, str] = {
    "✅": "confirm",
    "✔": "confirm",
    "☑": "confirm",
    "❌": "dismiss",
    "✖": "dismiss",
    "⬆": "escalate",
    "🔇": "mute",
    "🔨": "ban",
}
DECISIONS = {
    "confirm": Decision.CONFIRM,
    "dismiss": Decision.DISMISS,
    "escalate": Decision.ESCALATE,
    "mute": Decision.TIMEOUT,
    "ban": Decision.BAN,
}


def reaction_meaning(key: str) -> str | None:
    """`confirm`, `dismiss`, `escalate`, `mute`, `ban` or None for any other reaction."""
    return REACTIONS.get(key.replace("\ufe0f", "").replace("\ufe0e", "").strip())


@dataclass(frozen=True)
class Command:
    """A parsed `!gg` command; `error` is set (and shown to the sender) when it does not parse."""

    name: str
    case_id: int | None = None
    user: str | None = None
    band: AgeBand | None = None
    age: int | None = None
    error: str | None = None


def parse(text: str) -> Command:
    """Parse `!gg <verb> ...`; unknown verbs become `help` with an error explaining why."""
    parts = text.split()
    if not parts or parts[0].lower() != "!gg":
        return Command("none")
    if len(parts) == 1:
        return Command("help")
    verb, args = parts[1].lower(), parts[2:]
    if verb == "help":
        return Command("help")
    if verb == "cases":
        return Command("cases")
    if verb == "case":
        if len(args) != 1 or not args[0].lstrip("#").isdigit():
            return Command("case", error="usage: !gg case ID")
        return Command("case", case_id=int(args[0].lstrip("#")))
    if verb == "forget":
        if len(args) != 1 or not USER_ID.match(args[0]):
            return Command("forget", error="usage: !gg forget @user:server")
        return Command("forget", user=args[0])
    if verb == "age":
        if len(args) == 1 and args[0].isdigit():
            age = int(args[0])
            if not MIN_AGE <= age <= MAX_AGE:
                return Command("self_age", error=f"age must be between {MIN_AGE} and {MAX_AGE}")
            return Command("self_age", age=age, band=AgeBand.MINOR if age < 18 else AgeBand.ADULT)
        if len(args) == 2 and USER_ID.match(args[0]) and args[1].lower() in ("minor", "adult"):
            return Command("age", user=args[0], band=AgeBand(args[1].lower()))
        return Command("age", error="usage: !gg age @user:server minor|adult")
    return Command("help", error=f"unknown command {verb!r}")
