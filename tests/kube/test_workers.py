"""`jobgraph serve --workers N`: several processes on one port where nothing is bound to
one process (PostgreSQL, kubernetes pools only); refused with a reason elsewhere."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_BASE_URL
from tests.k8sfake import Delays, FakeKubernetes
from tests.support.server import (
    JOBGRAPH,
    Server,
    create_database,
    drop_database,
    free_port,
    server_env,
)

POOLS = """
pools:
  - id: k8s
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    queueing: none
    queues: [default]
    defaultImage: registry.example/train:1
"""


def test_workers_are_refused_on_sqlite(tmp_path):
    result = subprocess.run(
        [JOBGRAPH, "serve", "--workers", "2", "--port", str(free_port())],
        env=server_env(tmp_path, None), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs PostgreSQL" in result.stderr and "local" in result.stderr


def worker_pids(parent: int) -> list[int]:
    """uvicorn's workers: children started through multiprocessing's spawn (not its
    resource tracker)."""
    workers = []
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(int(pid))
    return workers


@pytest.mark.postgres
@pytest.mark.skipif(not PG_BASE_URL, reason="needs PostgreSQL (JOBGRAPH_TEST_DATABASE_URL)")
async def test_two_workers_serve_one_port(tmp_path):
    url = await create_database(PG_BASE_URL)
    async with FakeKubernetes.running(token="test-token", delays=Delays()) as fake:
        pools = tmp_path / "pools.yaml"
        pools.write_text(POOLS.format(kubeconfig=fake.write_kubeconfig(tmp_path / "kubeconfig")))
        server = Server(data_dir=tmp_path / "data", env=server_env(
            tmp_path / "data", url, JOBGRAPH_POOLS_FILE=str(pools)))
        token = await asyncio.to_thread(server.token, "wendy")
        process = subprocess.Popen(  # noqa: ASYNC220 - returns once started; stopped below
            [JOBGRAPH, "serve", "--workers", "2", "--port", str(server.port)],
            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
                async with asyncio.timeout(60):
                    while True:  # both workers up (each answers once its start-up is done)
                        try:
                            if (await http.get("/healthz")).status_code == 200 and \
                                    len(worker_pids(process.pid)) == 2:
                                break
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.2)
                created = (await http.post("/graphql", json={"query": (
                    'mutation { createJob(input: {name: "w", command: ["true"], resourcePoolId: "k8s"})'
                    " { job { jobId } userErrors { message } } }")})).json()
                job_id = created["data"]["createJob"]["job"]["jobId"]
                # Every answer, from whichever worker, sees the job.
                for _ in range(20):
                    async with httpx.AsyncClient(base_url=server.url, headers=headers) as fresh:
                        body = (await fresh.post("/graphql", json={
                            "query": "query($id: ID!) { job(id: $id) { jobId } }",
                            "variables": {"id": job_id}})).json()
                    assert body["data"]["job"]["jobId"] == job_id, body
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
            await drop_database(PG_BASE_URL, url)
