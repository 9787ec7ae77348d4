"""Shared fixtures: a real `jobgraph serve` process, its tokens and GraphQL clients.

Set JOBGRAPH_TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)
to run everything against PostgreSQL; each server then gets a database of its own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.processes import kill_leftover_replicas
from tests.support.server import (
    GraphQLClient,
    Server,
    create_database,
    drop_database,
    server_env,
)

PG_BASE_URL = os.environ.get("JOBGRAPH_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def no_slow_callbacks():
    """Fail the test during which a server under test logged a callback that held its
    event loop over 100 ms (asyncio debug mode, see `server_env`): blocking I/O on the
    loop is a bug."""
    marks = {server: len(server.output) for server in list(Server.made)}
    yield
    slow = []
    for server in list(Server.made):
        # A server's output restarts with each start; a new one starts at line 0.
        since = marks.get(server, 0) if len(server.output) >= marks.get(server, 0) else 0
        slow += server.slow_callbacks(since)
    if slow:
        pytest.fail("the event loop was blocked:\n" + "".join(slow[:10]), pytrace=False)


@pytest.fixture(scope="session")
def database_kind() -> str:
    return "postgresql" if PG_BASE_URL else "sqlite"


@pytest.fixture(scope="session")
async def server_factory(tmp_path_factory) -> AsyncIterator[Callable[..., object]]:
    """Makes servers with their own data dir (and database on PostgreSQL)."""
    servers: list[tuple[Server, str | None]] = []

    async def make(**extra_env: str) -> Server:
        data_dir = Path(tmp_path_factory.mktemp("jobgraph"))
        url = await create_database(PG_BASE_URL) if PG_BASE_URL else None
        server = Server(data_dir=data_dir, env=server_env(data_dir, url, **extra_env))
        servers.append((server, url))
        return server

    yield make
    for server, url in servers:
        server.stop()
        kill_leftover_replicas(server.data_dir)
        if url:
            await drop_database(PG_BASE_URL, url)


class Running:
    """A started server with an admin and two users."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.admin_token = server.token("root", admin=True)
        self.alice_token = server.token("alice")
        self.bob_token = server.token("bob")
        self.clients: list[GraphQLClient] = []

    def client(self, token: str | None) -> GraphQLClient:
        client = GraphQLClient(self.server.url, token)
        self.clients.append(client)
        return client


# The shared server's pools: `local` (4 slots, queues default and high) and `solo`
# (1 slot), so queueing can be watched.
POOLS = """
pools:
  - id: local
    runtime: local
    maxConcurrentJobs: 4
    queues: [default, high]
  - id: solo
    runtime: local
    maxConcurrentJobs: 1
    queues: [default]
"""


@pytest.fixture(scope="session")
def pools_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_text(POOLS)
    return path


@pytest.fixture(scope="session")
async def running(server_factory, pools_file) -> AsyncIterator[Running]:
    extra = {"JOBGRAPH_POOLS_FILE": str(pools_file)} if pools_file else {}
    server = await server_factory(**extra)
    env = Running(server)  # tokens are created (and the schema migrated) before serving
    server.start()
    yield env
    for client in env.clients:
        await client.close()


@pytest.fixture(scope="session")
def alice(running: Running) -> GraphQLClient:
    return running.client(running.alice_token)


@pytest.fixture(scope="session")
def bob(running: Running) -> GraphQLClient:
    return running.client(running.bob_token)


@pytest.fixture(scope="session")
def admin(running: Running) -> GraphQLClient:
    return running.client(running.admin_token)
