"""Matrix test fixtures: a real local Synapse per session, and logged-in nio clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from nio import AsyncClient, AsyncClientConfig

from tests.services import missing_service
from tests.synapse.homeserver import Homeserver, missing_reason, start_homeserver


@pytest.fixture(scope="session")
def synapse() -> Iterator[Homeserver]:
    """A Synapse on 127.0.0.1 for the whole session: `.url`, `.register(name)`, `.stop()`."""
    reason = missing_reason()
    if reason:
        missing_service(reason)
    server = start_homeserver()
    try:
        yield server
    finally:
        server.stop()


ClientFactory = Callable[[Homeserver, str], AsyncClient]


@pytest.fixture
async def matrix_client() -> AsyncIterator[ClientFactory]:
    """Make nio clients for freshly registered users; all are closed after the test."""
    clients: list[AsyncClient] = []

    def make(server: Homeserver, username: str) -> AsyncClient:
        user_id, token = server.register(username)
        client = AsyncClient(server.url, user_id, config=AsyncClientConfig(encryption_enabled=False))
        client.access_token = token
        client.user_id = user_id
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
