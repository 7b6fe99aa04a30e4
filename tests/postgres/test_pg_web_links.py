"""One-time web sign-in links on PostgreSQL: kept by hash, usable once, refused after expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from groomguard.app.web import auth
from groomguard.store import open_store
from groomguard.testing import make_settings


async def test_a_link_works_once_and_expires(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "unused.db", store__database_url=pg_url)
    store = open_store(settings.store)
    await store.open()
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    try:
        token, old = auth.new_token(), auth.new_token()
        await store.put_web_link(auth.digest(token), "alice", now + timedelta(minutes=15))
        await store.put_web_link(auth.digest(old), "bob", now - timedelta(minutes=1))
        assert await store.take_web_link(auth.digest("guess"), now) is None
        assert await store.take_web_link(auth.digest(old), now) is None, "expired"
        assert await store.take_web_link(auth.digest(token), now) == "alice"
        assert await store.take_web_link(auth.digest(token), now) is None, "used"
        con = await asyncpg.connect(pg_url)
        try:
            left = await con.fetch("SELECT name, value FROM meta WHERE name LIKE 'web_link:%'")
        finally:
            await con.close()
        assert left == []
    finally:
        await store.close()
