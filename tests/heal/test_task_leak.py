"""Subscriptions dropped abruptly leave no task behind on the server."""

from __future__ import annotations

import asyncio
import json
import re

import websockets

from tests.support.jobs import PY, create_job, wait_for_status
from tests.support.subscriptions import ws_url

JOB_EVENTS = "subscription($id: ID!) { jobEvents(jobId: $id) { reason } }"
DISCONNECTS = 300
AT_ONCE = 20
# Tasks the server may legitimately have started meanwhile (pool sweeps, keep-alives).
SLACK = 15


async def task_count(http) -> int:
    response = await http.get("/metrics")
    response.raise_for_status()
    return int(float(re.search(r"^jobgraph_event_loop_tasks (\S+)$", response.text, re.M)[1]))


async def subscribe_then_vanish(url: str, token: str, job_id: str) -> None:
    """Subscribe to a running job's events, read the first, then drop the TCP connection
    without a close frame (a client that crashed or lost its network)."""
    async with websockets.connect(ws_url(url), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({
            "id": "1", "type": "subscribe",
            "payload": {"query": JOB_EVENTS, "variables": {"id": job_id}},
        }))
        while json.loads(await ws.recv())["type"] != "next":
            pass
        ws.transport.abort()


async def test_dropped_subscriptions_leave_the_task_count_at_its_baseline(running, alice, admin, tmp_path):
    gate = tmp_path / "gate"
    script = f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)"
    job = await create_job(alice, command=[PY, "-c", script])
    await wait_for_status(alice, job["jobId"], "RUNNING")
    url, token = running.server.url, running.alice_token
    try:
        for _ in range(AT_ONCE):  # warm up whatever the server starts lazily
            await subscribe_then_vanish(url, token, job["jobId"])
        baseline = await _settled_count(admin.http, below=None)

        for _ in range(DISCONNECTS // AT_ONCE):
            await asyncio.gather(
                *(subscribe_then_vanish(url, token, job["jobId"]) for _ in range(AT_ONCE))
            )
        # The server notices each drop on its own time: wait for the count to come back.
        count = await _settled_count(admin.http, below=baseline + SLACK)
        assert count <= baseline + SLACK, (baseline, count)
    finally:
        gate.touch()


async def _settled_count(http, *, below: int | None, timeout: float = 60.0) -> int:
    """The task count once it is under `below` (or has stopped falling), or at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    count = await task_count(http)
    previous = None
    while loop.time() < deadline:
        if below is not None and count <= below:
            return count
        if below is None and count == previous:
            return count
        previous = count
        await asyncio.sleep(0.5)
        count = await task_count(http)
    return count
