"""Several pools on several clusters: each pool has its own client and watch, and a job
goes to its pool's cluster only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import Running
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.conftest import shell_job
from tests.support.jobs import create_job, logs, wait_for_status

POOLS = """
pools:
  - id: east
    runtime: kubernetes
    kubeconfig: {east}
    defaultImage: registry.example/train:1
  - id: west
    runtime: kubernetes
    kubeconfig: {west}
    defaultImage: registry.example/train:1
"""


async def test_each_pool_runs_its_jobs_on_its_own_cluster(server_factory, tmp_path):
    async with FakeKubernetes.running(delays=Delays()) as east, FakeKubernetes.running(delays=Delays()) as west:
        pools = tmp_path / "pools.yaml"
        pools.write_text(POOLS.format(
            east=east.write_kubeconfig(tmp_path / "east"), west=west.write_kubeconfig(tmp_path / "west"),
        ))
        server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
        env = Running(server)
        await asyncio.to_thread(server.start)  # the fakes answer in this loop
        client = env.client(env.alice_token)
        try:
            jobs = {}
            for pool in ("east", "west"):
                job = await create_job(client, **shell_job(f"echo from {pool}", Path(tmp_path), resourcePoolId=pool))
                jobs[pool] = job["jobId"]
            for pool, fake in (("east", east), ("west", west)):
                done = await wait_for_status(client, jobs[pool], "SUCCEEDED", "FAILED")
                assert done["status"] == "SUCCEEDED", done
                assert (await logs(client, jobs[pool], done["pods"][0]["name"])).strip() == f"from {pool}"
                assert fake.job(jobs[pool]) is not None
                other = jobs["west" if pool == "east" else "east"]
                assert not any(r.method == "POST" and other in str(r.body) for r in fake.requests)
        finally:
            await client.close()
            await asyncio.to_thread(server.stop)
