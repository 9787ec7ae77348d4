"""Subscriptions with real clients against the real server: gql over
graphql-transport-ws, and a hand-spoken legacy graphql-ws client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from gql.transport.exceptions import TransportConnectionFailed

from tests.support.jobs import PY, create_job, logs, wait_for_status
from tests.support.subscriptions import LegacyGraphQLWS, gql_session, gql_subscribe, ws_url

JOB_UPDATED = """
subscription($id: ID) { jobUpdated(jobId: $id) { jobId status exitCode pods { name phase } } }
"""
JOB_EVENTS = "subscription($id: ID!) { jobEvents(jobId: $id) { type reason message timestamp } }"
POD_LOGS = """
subscription($id: ID!, $pod: String!, $tail: Int) { podLogs(jobId: $id, podName: $pod, tailLines: $tail) }
"""


def gated(gate, *, before: str = "", after: str = "") -> list[str]:
    script = f"import os,time\n{before}\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)\n{after}"
    return [PY, "-c", script]


async def test_job_updated_follows_a_job_from_pending_to_succeeded(running, alice, tmp_path):
    gate = tmp_path / "gate"
    async with gql_session(running.server.url, running.alice_token) as session:
        stream = gql_subscribe(session, JOB_UPDATED, {"id": None})
        await _until_live(stream, alice)
        job = await create_job(alice, command=gated(gate, after="print('done')"))
        statuses = []
        while not statuses or statuses[-1] not in ("SUCCEEDED", "FAILED"):
            update = (await asyncio.wait_for(anext(stream), 20))["jobUpdated"]
            if update["jobId"] == job["jobId"]:
                statuses.append(update["status"])
                if update["status"] == "RUNNING":
                    gate.touch()
        await stream.aclose()
    assert statuses[0] == "PENDING" and statuses[-1] == "SUCCEEDED"
    assert statuses.index("QUEUED") < statuses.index("RUNNING") < len(statuses) - 1


async def _until_live(stream, client) -> None:
    """gql gives no signal when the server has registered a subscription: create a probe
    job and wait for its first update to come through the stream."""
    probe = await create_job(client, name="probe", command=[PY, "-c", "pass"])
    async with asyncio.timeout(20):
        while (await anext(stream))["jobUpdated"]["jobId"] != probe["jobId"]:
            pass


async def test_job_updated_for_one_job_ends_after_the_final_status(running, alice, tmp_path):
    gate = tmp_path / "gate"
    job = await create_job(alice, command=gated(gate))
    async with gql_session(running.server.url, running.alice_token) as session:
        seen = []
        async for result in gql_subscribe(session, JOB_UPDATED, {"id": job["jobId"]}):
            seen.append(result["jobUpdated"]["status"])
            if seen[-1] == "RUNNING":
                gate.touch()
        # The stream ended by itself after SUCCEEDED.
    assert seen[-1] == "SUCCEEDED" and "RUNNING" in seen
    assert seen.count("SUCCEEDED") == 1


async def test_job_events_gives_stored_then_new_events(running, alice, tmp_path):
    gate = tmp_path / "gate"
    job = await create_job(alice, command=gated(gate))
    await wait_for_status(alice, job["jobId"], "RUNNING")
    async with gql_session(running.server.url, running.alice_token) as session:
        reasons = []
        async for result in gql_subscribe(session, JOB_EVENTS, {"id": job["jobId"]}):
            reasons.append(result["jobEvents"]["reason"])
            if reasons[-1] == "Started":
                gate.touch()  # stored events are out; the rest happens live
    assert reasons[:3] == ["Created", "Queued", "Started"]
    assert reasons[-1] == "Completed" and len(reasons) == len(set(reasons))


async def test_pod_logs_mid_run_gets_the_tail_then_the_rest_without_gaps(running, alice, tmp_path):
    gate = tmp_path / "gate"
    command = gated(
        gate,
        before="for i in range(200): print('line', i, flush=True)",
        after="for i in range(200, 5000): print('line', i)",
    )
    job = await create_job(alice, command=command)
    pod = f"{job['jobId']}-0"
    await wait_for_status(alice, job["jobId"], "RUNNING")
    async with asyncio.timeout(15):
        while "line 199" not in await logs(alice, job["jobId"], pod, tail=1):
            await asyncio.sleep(0.02)
    lines = []
    async with gql_session(running.server.url, running.alice_token) as session:
        async for result in gql_subscribe(session, POD_LOGS, {"id": job["jobId"], "pod": pod, "tail": 50}):
            lines.append(result["podLogs"])
            if len(lines) == 50:
                gate.touch()  # the log grows while we listen
    assert lines == [f"line {i}" for i in range(150, 5000)]


async def test_legacy_graphql_ws_client_sees_the_job_finish(running, alice, tmp_path):
    gate = tmp_path / "gate"
    job = await create_job(alice, command=gated(gate))
    async with LegacyGraphQLWS.connect(running.server.url, {"token": running.alice_token}) as client:
        assert (await client.receive())["type"] == "connection_ack"
        statuses = []
        async for payload in client.subscribe(JOB_UPDATED, {"id": job["jobId"]}):
            statuses.append(payload["data"]["jobUpdated"]["status"])
            if statuses[-1] == "RUNNING":
                gate.touch()
    assert statuses[-1] == "SUCCEEDED"


async def test_sockets_without_a_valid_token_are_closed_unauthorized(running):
    url = ws_url(running.server.url)
    for payload in ({}, {"Authorization": "Bearer jg_wrong"}, {"token": ""}):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4401
    with pytest.raises(TransportConnectionFailed):
        async with gql_session(running.server.url, "jg_wrong") as session:
            async for _ in gql_subscribe(session, JOB_UPDATED, {"id": None}):
                pass
    async with LegacyGraphQLWS.connect(running.server.url, {"token": "jg_wrong"}) as client:
        message = await client.receive()
        assert message["type"] == "connection_error"
        assert "unknown API token" in message["payload"]["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.ws.recv()
        assert closed.value.rcvd.code == 4401


async def test_pod_log_lines_batches_a_fast_log_without_losing_a_line(running, alice):
    job = await create_job(alice, command=[PY, "-c", "import sys\nfor i in range(50000): print('row', i)"])
    pod = f"{job['jobId']}-0"
    await wait_for_status(alice, job["jobId"], "RUNNING", "SUCCEEDED")
    batches = []
    async with gql_session(running.server.url, running.alice_token) as session:
        query = "subscription($id: ID!, $pod: String!) { podLogLines(jobId: $id, podName: $pod) }"
        async for result in gql_subscribe(session, query, {"id": job["jobId"], "pod": pod}):
            batches.append(result["podLogLines"])
    lines = [line for batch in batches for line in batch]
    assert lines == [f"row {i}" for i in range(50000)]
    assert len(batches) < 1000  # many lines per message
