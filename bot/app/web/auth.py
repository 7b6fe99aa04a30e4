"""Who may see the web case view: per-moderator tokens, one-time sign-in links, sessions and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from groomguard.config import WebSettings

#: Sessions kept at once; beyond it the oldest is signed out (bounded memory, whatever clients do).
MAX_SESSIONS = 1_000
#: Failed sign-ins allowed per client address in FAILURE_WINDOW_S before it is answered 429.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 600.0


def digest(token: str) -> str:
    """SHA-256 hex of a token: what the config and the store keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits), URL-safe."""
    return secrets.token_urlsafe(32)


def same(a: str, b: str) -> bool:
    """Constant-time comparison, so response timing tells nothing about a token."""
    return hmac.compare_digest(a.encode(), b.encode())


def moderator_for_token(settings: WebSettings, token: str) -> str | None:
    """The moderator whose configured token this is, or None; every entry is compared (no early exit)."""
    presented = digest(token.strip())
    found = None
    for name, moderator in settings.moderators.items():
        expected = moderator.token_digest()
        if expected is not None and same(presented, expected) and found is None:
            found = name
    return found


@dataclass
class Session:
    """One signed-in moderator: the cookie value, a CSRF token for its forms, what it revealed."""

    id: str
    moderator: str
    expires_at: datetime
    csrf: str = field(default_factory=new_token)
    #: case id → children this session revealed (their real ids are shown only to it).
    revealed: dict[int, set[str]] = field(default_factory=dict)
    #: Cases whose opening is already in the audit trail for this session.
    opened: set[int] = field(default_factory=set)


class Sessions:
    """Sessions in memory: a restart signs everyone out, which is the safe direction."""

    def __init__(self, settings: WebSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, moderator: str) -> Session:
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.pop(next(iter(self._by_id)))
        session = Session(new_token(), moderator, self.clock() + timedelta(minutes=self.settings.session_minutes))
        self._by_id[digest(session.id)] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value; expired ones and moderators removed from the config are gone."""
        if not session_id:
            return None
        key = digest(session_id)
        session = self._by_id.get(key)
        if session is None:
            return None
        if session.expires_at <= self.clock() or session.moderator not in self.settings.moderators:
            del self._by_id[key]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._by_id.pop(digest(session_id), None)

    def __len__(self) -> int:
        return len(self._by_id)


class FailureLimit:
    """Counts failed sign-ins per client address over a sliding window (monotonic clock)."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= self.limit

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()  # bounded memory under a spray of addresses
        self._failures.setdefault(client, []).append(time.monotonic())


def link_url(settings: WebSettings, token: str) -> str:
    return f"{settings.base_url()}/signin/link?token={token}"
