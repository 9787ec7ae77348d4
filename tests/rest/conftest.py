"""REST facade tests: httpx against the real server process (the session `running`
fixture, default pool), and the GraphQL twin of each call for comparison."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.rest import Rest

@pytest.fixture(scope="session")
async def rest(running, alice) -> AsyncIterator[Rest]:
    client = Rest(running.server.url, running.alice_token, alice)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def rest_bob(running, bob) -> AsyncIterator[Rest]:
    client = Rest(running.server.url, running.bob_token, bob)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def anonymous(running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.server.url, timeout=30) as client:
        yield client
