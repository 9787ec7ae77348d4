"""Reads of jobs answered from memory (the answer cache, issue 11), against a real server:
the answer is served from memory (a change written behind the server's back is not
seen, the proof), until a change made through jobgraph (a stop, a share, a deletion, a
new job) drops it — on the same server at once, on another server on the same
PostgreSQL database within its notification's round trip. Answers are kept per
principal, and documents that read anything else (`queuePosition`) are never kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_BASE_URL
from tests.support.jobs import PY, create_job, wait_for_status
from tests.support.server import GraphQLClient, Server, servers_on_one_database

JOB = "query Job($id: ID!) { job(id: $id) { jobId reason status pods { name phase } } }"
WITH_POSITION = "query Position($id: ID!) { job(id: $id) { reason queuePosition } }"
SHARE = """
mutation Share($id: ID!, $groups: [String!]!) {
  shareJob(input: {jobId: $id, groups: $groups}) { userErrors { code message } }
}
"""
SLEEPING = [PY, "-c", "import time; time.sleep(120)"]


async def write_behind_the_servers_back(server: Server, job_id: str, reason: str) -> None:
    """Set the job's `reason` in the database without telling anyone."""
    url = server.env.get("JOBGRAPH_DATABASE_URL")
    if url:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("UPDATE jobs SET reason = $1 WHERE id = $2", reason, job_id)
        finally:
            await conn.close()
    else:
        with sqlite3.connect(Path(server.data_dir) / "jobgraph.db") as db:
            db.execute("UPDATE jobs SET reason = ? WHERE id = ?", (reason, job_id))


class Reader:
    """REST and GraphQL reads of one principal."""

    def __init__(self, server: Server, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.http = httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30)
        self.graphql = GraphQLClient(server.url, token)

    async def rest(self, job_id: str) -> httpx.Response:
        return await self.http.get(f"/api/jobs/{job_id}")

    async def reason(self, job_id: str) -> str | None:
        response = await self.rest(job_id)
        assert response.status_code == 200, response.text
        return response.json()["data"]["reason"]

    async def graphql_reason(self, job_id: str, document: str = JOB) -> str | None:
        return (await self.graphql.execute(document, {"id": job_id}))["job"]["reason"]

    async def listed(self) -> set[str]:
        response = await self.http.post("/api/jobs", json={"pageSize": 100})
        assert response.status_code == 200, response.text
        return {job["jobId"] for job in response.json()["data"]["jobs"]}

    async def close(self) -> None:
        await self.http.aclose()
        await self.graphql.close()


@pytest.fixture
async def server(server_factory):
    server = await server_factory()
    server.tokens = {  # type: ignore[attr-defined]
        "alice": server.token("alice"),
        "root": server.token("root", admin=True),
        "carol": server.cli("token", "create", "--user", "carol", "--group", "vision"),
    }
    server.start()
    yield server
    server.stop()


async def test_a_kept_answer_is_served_until_its_job_changes(server):
    alice = Reader(server, server.tokens["alice"])
    try:
        job = await create_job(alice.graphql, name="kept", command=SLEEPING)
        job_id = job["jobId"]
        await wait_for_status(alice.graphql, job_id, "RUNNING")
        assert await alice.reason(job_id) is None
        assert await alice.graphql_reason(job_id) is None
        await write_behind_the_servers_back(server, job_id, "written behind")
        # Served from memory: the database was not read again.
        assert await alice.reason(job_id) is None
        assert await alice.graphql_reason(job_id) is None
        # A document that reads more than announced changes is never kept.
        assert await alice.graphql_reason(job_id, WITH_POSITION) == "written behind"
        # A change through jobgraph: the next read, at once, is fresh.
        stopped = await alice.http.post(f"/api/jobs/{job_id}/stop")
        assert stopped.status_code == 200, stopped.text
        answer = (await alice.rest(job_id)).json()["data"]
        assert answer["status"] in ("Stopping", "Stopped")
        job = (await alice.graphql.execute(JOB, {"id": job_id}))["job"]
        assert job["status"] in ("STOPPING", "STOPPED")
    finally:
        await alice.close()


async def test_answers_are_kept_per_principal_and_dropped_by_shares_and_deletions(server):
    alice = Reader(server, server.tokens["alice"])
    root = Reader(server, server.tokens["root"])
    carol = Reader(server, server.tokens["carol"])
    try:
        job_id = (await create_job(alice.graphql, name="shared later", command=[PY, "-c", "pass"]))["jobId"]
        await wait_for_status(alice.graphql, job_id, "SUCCEEDED")
        assert await root.reason(job_id) is None  # kept for the admin ...
        assert await root.reason(job_id) is None
        metrics = (await root.http.get("/metrics")).text
        # Answered from memory, counted like a computed answer, under its route.
        assert 'route="/api/jobs/{jobId}",status="200"' in metrics
        assert 'route="unmatched"' not in metrics
        hits = next(line for line in metrics.splitlines() if 'outcome="hit"' in line)
        assert float(hits.rsplit(" ", 1)[1]) >= 1
        assert (await carol.rest(job_id)).status_code == 404  # ... not for another user
        assert job_id not in await carol.listed()  # kept: carol's list, without it
        shared = await alice.graphql.execute(SHARE, {"id": job_id, "groups": ["vision"]})
        assert shared["shareJob"]["userErrors"] == []
        assert job_id in await carol.listed()
        assert await carol.reason(job_id) is None
        # A new job drops every kept list.
        assert job_id in await alice.listed()
        newer = (await create_job(alice.graphql, name="newer", command=[PY, "-c", "pass"]))["jobId"]
        assert newer in await alice.listed()
        # A deletion drops what was read from the job, and the lists.
        assert await alice.reason(job_id) is None
        deleted = await alice.http.delete(f"/api/jobs/{job_id}")
        assert deleted.status_code == 200, deleted.text
        assert (await alice.rest(job_id)).status_code == 404
        assert (await root.rest(job_id)).status_code == 404
        assert job_id not in await alice.listed()
    finally:
        for reader in (alice, root, carol):
            await reader.close()


async def changed_soon(read, expected) -> None:
    # An event, not a sleep: the first read that sees the change.
    async with asyncio.timeout(10):
        while await read() != expected:
            await asyncio.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.skipif(not PG_BASE_URL, reason="needs PostgreSQL (JOBGRAPH_TEST_DATABASE_URL)")
async def test_a_change_on_one_server_drops_the_answers_kept_by_another(tmp_path):
    readers: list[Reader] = []
    async with servers_on_one_database(PG_BASE_URL, tmp_path, "one", "two") as servers:
        try:
            token = servers[0].token("alice")
            for server in servers:
                server.start()
            one, two = readers[:] = [Reader(server, token) for server in servers]
            job_id = (await create_job(one.graphql, name="seen twice", command=[PY, "-c", "pass"]))["jobId"]
            await wait_for_status(one.graphql, job_id, "SUCCEEDED")
            assert await one.reason(job_id) is None
            assert await one.graphql_reason(job_id) is None
            await write_behind_the_servers_back(servers[0], job_id, "written behind")
            assert await one.reason(job_id) is None  # kept on server one
            shared = await two.graphql.execute(SHARE, {"id": job_id, "groups": ["vision"]})
            assert shared["shareJob"]["userErrors"] == []
            await changed_soon(lambda: one.reason(job_id), "written behind")
            await changed_soon(lambda: one.graphql_reason(job_id), "written behind")
            deleted = await two.http.delete(f"/api/jobs/{job_id}")
            assert deleted.status_code == 200, deleted.text

            async def status() -> int:
                return (await one.rest(job_id)).status_code

            await changed_soon(status, 404)
        finally:
            for reader in readers:
                await reader.close()
