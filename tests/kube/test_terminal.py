"""The web terminal end to end on a kubernetes pool: REST terminal URL -> jobgraph's
terminal socket -> the runtime's exec Terminal (v4.channel.k8s.io) -> a real shell run by
the fake's kubelet."""

from __future__ import annotations

import asyncio
import re

import httpx
import websockets

from tests.kube.conftest import shell_job
from tests.support.jobs import create_job, wait_for_status


async def read_until(ws, pattern: str, timeout: float = 20.0) -> str:
    seen = ""
    try:
        async with asyncio.timeout(timeout):
            while not re.search(pattern, seen):
                frame = await ws.recv()
                seen += frame.decode() if isinstance(frame, bytes) else frame
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} in terminal output {seen!r}") from None
    return seen


async def test_the_web_terminal_reaches_a_shell_in_the_pod(cluster, tmp_path):
    fake, alice = cluster.fake, cluster.alice
    job = await create_job(alice, **shell_job("while :; do sleep 0.05; done", tmp_path))
    running = await wait_for_status(alice, job["jobId"], "RUNNING")
    pod = running["pods"][0]["name"]
    async with httpx.AsyncClient(
        base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.env.alice_token}"}
    ) as http:
        answer = await http.get(f"/api/jobs/{job['jobId']}/pods/{pod}/webterminal")
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"]["webTerminalUrl"]
    async with websockets.connect(url) as ws:
        await ws.send(b"\x04" + b'{"Height": 30, "Width": 100}')
        await ws.send(b"\x00" + b"stty size; echo $((6*7))\n")
        seen = await read_until(ws, r"[\r\n]42\r\n")
        assert re.search(r"[\r\n]30 100\r\n", seen), seen
        await ws.send(b"\x00exit\n")
    [exec_call] = fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/exec")
    assert exec_call.headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io"
    await alice.execute(
        "mutation($id: ID!) { deleteJob(input: {jobId: $id}) { deletedJobId } }", {"id": job["jobId"]}
    )
