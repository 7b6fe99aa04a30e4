"""PostgreSQL-only tests: the server and per-test databases are the root conftest's `pg_server` and `pg_url`."""

from __future__ import annotations

from tests.services import missing_service

try:
    import asyncpg  # noqa: F401  (the tests here import it at module level)
except ImportError:
    missing_service("asyncpg is not installed: pip install 'groomguard[postgres]'", module=True)
