"""REST facade tests: httpx against the real server process (the session `running`
fixture, default pool), and the GraphQL twin of each call for comparison."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.rest import Rest
from tests.support.server import GraphQLClient


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


# The legacy web console's server (issue 10): served from another origin, so the API
# lists that origin in JOBGRAPH_CORS_ORIGINS. Pools: `local` (4 slots) and `solo`
# (1 slot, so a job can be held queued).
CONSOLE_ORIGIN = "http://console.example:8001"
CONSOLE_POOLS = """
pools:
  - id: local
    runtime: local
    maxConcurrentJobs: 4
    queues: [default]
  - id: solo
    runtime: local
    maxConcurrentJobs: 1
    queues: [default]
"""


class Console:
    """A server of its own for the console's tests, with a user `carol` (an API token)
    and an admin."""

    def __init__(self, server) -> None:
        self.server = server
        self.carol_token = server.token("carol")
        self.admin_token = server.token("root", admin=True)


@pytest.fixture(scope="session")
async def console(server_factory, tmp_path_factory) -> AsyncIterator[Console]:
    pools = tmp_path_factory.mktemp("console-pools") / "pools.yaml"
    pools.write_text(CONSOLE_POOLS)
    server = await server_factory(
        JOBGRAPH_POOLS_FILE=str(pools), JOBGRAPH_CORS_ORIGINS=CONSOLE_ORIGIN,
    )
    env = Console(server)
    server.start()
    yield env


@pytest.fixture(scope="session")
async def carol(console) -> AsyncIterator[Rest]:
    graphql = GraphQLClient(console.server.url, console.carol_token)
    client = Rest(console.server.url, console.carol_token, graphql)
    yield client
    await client.close()
    await graphql.close()
