"""Issue 13 through the real server on Kubernetes pools backed by the fake: the largest node
read from the cluster refuses at submit what no node could run (nothing recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Running
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.conftest import Cluster, shell_job
from tests.support.jobs import create_errors, create_job

POOLS = """
pools:
  - id: gpus
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    queues: [default]
    defaultImage: registry.example/train:1
    nodeSelector: {{"nvidia.com/gpu.present": "true"}}
  - id: kq
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    queueing: kueue
    queues: [default]
    defaultImage: registry.example/train:1
"""
NODES = [
    {"name": "cpu-1", "allocatable": {"cpu": "64", "memory": "256Gi"}},
    {"name": "gpu-1", "allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8"},
     "labels": {"nvidia.com/gpu.present": "true"}},
]
COUNT = "{ jobs(first: 1) { totalCount } }"


@pytest.fixture(scope="module")
async def nodes_cluster(server_factory, tmp_path_factory) -> AsyncIterator[Cluster]:
    async with FakeKubernetes.running(delays=Delays(), kueue=True, nodes=NODES) as fake:
        folder = Path(tmp_path_factory.mktemp("kube-nodes"))
        kubeconfig = fake.write_kubeconfig(folder / "kubeconfig")
        pools = folder / "pools.yaml"
        pools.write_text(POOLS.format(kubeconfig=kubeconfig))
        server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
        env = Running(server)
        await asyncio.to_thread(server.start)
        cluster = Cluster(fake, env)
        try:
            yield cluster
        finally:
            for client in env.clients:
                await client.close()
            await asyncio.to_thread(server.stop)
            assert not fake.controller_errors, fake.controller_errors


async def test_a_replica_larger_than_the_largest_node_is_refused_with_nothing_recorded(
        nodes_cluster, tmp_path):
    cluster, alice = nodes_cluster, nodes_cluster.alice
    created = len(cluster.fake.calls("POST", "/apis/batch/v1/"))
    errors = await create_errors(alice, **shell_job("true", tmp_path, resourcePoolId="gpus"),
                                 resources={"gpu": 16})
    assert errors == [{
        "field": "resources.gpu", "code": "EXCEEDS_POOL_CAPACITY",
        "message": "the job can never run in pool 'gpus': each replica asks for 16 GPUs, and "
                   "the pool's largest node has at most 8 GPUs allocatable (a replica runs on "
                   "one node)",
    }]
    # The pool's nodeSelector leaves out the 64-CPU node: 16 CPUs is its most.
    errors = await create_errors(alice, **shell_job("true", tmp_path, resourcePoolId="gpus"),
                                 resources={"cpus": 32})
    assert errors[0]["code"] == "EXCEEDS_POOL_CAPACITY"
    assert "at most 16 CPUs allocatable" in errors[0]["message"]
    assert (await alice.execute(COUNT))["jobs"]["totalCount"] == 0
    assert len(cluster.fake.calls("POST", "/apis/batch/v1/")) == created
    # On the Kueue pool every node counts; the whole node fits.
    job = await create_job(alice, **shell_job("true", tmp_path, resourcePoolId="kq"),
                           resources={"cpus": 64, "memory": 256})
    assert job["resourcePoolId"] == "kq"
