"""A running server whose database goes away and comes back (cut through a TCP proxy
the test controls; the machine's PostgreSQL is never restarted):
- requests during the outage answer 503 with a code and a message, /readyz 503;
- a job that ends during the outage is not left RUNNING: its final status is retried
  until the database takes it;
- subscribers from before the outage get that final status, and new ones get updates.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets

from tests.conftest import PG_BASE_URL
from tests.support.jobs import PY, WATCH_JOB, create_job, get_job, wait_for_status
from tests.support.server import GraphQLClient, Server, create_database, drop_database, server_env
from tests.support.subscriptions import gql_session, gql_subscribe, ws_url
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_BASE_URL, reason="the outage is of PostgreSQL")
WAIT = 90.0
ALL_JOBS = "subscription { jobUpdated { jobId status } }"


def gated(gate: Path) -> list[str]:
    script = f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)"
    return [PY, "-c", script]


@pytest.fixture
async def cut_server(tmp_path):
    """A server that reaches its own database only through a proxy."""
    target = urlsplit(PG_BASE_URL)
    proxy = TcpProxy(target.hostname, target.port or 5432).start()
    url = await create_database(PG_BASE_URL)
    parts = urlsplit(url)
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    server = Server(data_dir=tmp_path, env=server_env(tmp_path, proxied))
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.close()
        await drop_database(PG_BASE_URL, url)


async def statuses_until(stream, job_id: str, final: str) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        async for result in stream:
            job = result["jobUpdated"]
            if job["jobId"] == job_id:
                seen.append(job["status"])
                if job["status"] == final:
                    return seen
    raise AssertionError(seen)


async def test_the_server_heals_after_its_database_comes_back(cut_server, tmp_path):
    server, proxy = cut_server
    token = server.token("alice")
    unused = server.token("bob")  # never used before the outage: not in any cache
    server.start()
    alice = GraphQLClient(server.url, token)
    gate = tmp_path / "gate"
    try:
        job = await create_job(alice, command=gated(gate))
        job_id = job["jobId"]
        await wait_for_status(alice, job_id, "RUNNING")
        async with gql_session(server.url, token) as one, gql_session(server.url, token) as every:
            old_one = gql_subscribe(one, WATCH_JOB, {"id": job_id})
            assert (await anext(old_one))["jobUpdated"]["status"] == "RUNNING"
            old_every = gql_subscribe(every, ALL_JOBS)
            probe = await create_job(alice, command=[PY, "-c", "pass"])
            await statuses_until(old_every, probe["jobId"], "SUCCEEDED")  # it is live

            proxy.cut()
            await _answers_unavailable(server.url, token, job_id)
            await _socket_says_try_again_later(server.url, unused)
            gate.touch()  # the job ends while the database is away
            server.wait_for_output("sync.apply_retry", timeout=WAIT)
            proxy.restore()

            assert (await statuses_until(old_one, job_id, "SUCCEEDED"))[-1] == "SUCCEEDED"
            await statuses_until(old_every, job_id, "SUCCEEDED")

            # New subscribers, after the outage.
            async with asyncio.timeout(WAIT):
                while (ready := await httpx.AsyncClient().get(f"{server.url}/readyz")).status_code != 200:
                    await asyncio.sleep(0.2)
            second = await create_job(alice, command=[PY, "-c", "print('after')"])
            done = await wait_for_status(alice, second["jobId"], "SUCCEEDED", "FAILED", timeout=WAIT)
            assert done["status"] == "SUCCEEDED"
            assert (await statuses_until(old_every, second["jobId"], "SUCCEEDED"))[-1] == "SUCCEEDED"
        assert (await get_job(alice, job_id))["status"] == "SUCCEEDED"  # stored, not only sent
        assert ready.json()["database"] == "ok"
    finally:
        gate.touch()
        await alice.close()


async def _answers_unavailable(url: str, token: str, job_id: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "unavailable"

        rest = await http.get(f"/api/jobs/{job_id}")
        assert rest.status_code == 503, rest.text
        body = rest.json()
        assert body["success"] is False and body["code"] == "RUNTIME_UNAVAILABLE"
        assert "database" in body["message"]

        graphql = await http.post("/graphql", json={"query": "{ jobs { totalCount } }"})
        assert graphql.status_code in (200, 503), graphql.text
        error = graphql.json()["errors"][0]
        assert error["extensions"]["code"] == "RUNTIME_UNAVAILABLE"
        assert "database" in error["message"]


async def _socket_says_try_again_later(url: str, token: str) -> None:
    """A subscription socket that cannot be authorised for want of the database is
    closed with 1013 (try again later), not left hanging or closed as an error."""
    async with websockets.connect(ws_url(url), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(60):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "database" in closed.value.rcvd.reason
