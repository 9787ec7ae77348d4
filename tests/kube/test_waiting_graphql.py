"""Issue 13 through the real server on Kubernetes pools backed by the fake: the largest node
read from the cluster refuses at submit what no node could run (nothing recorded); a Kueue
job's pendingReason and queuePosition (Kueue's visibility API), held, released and
re-ordered through GraphQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Running
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.conftest import Cluster, shell_job
from tests.support.jobs import create_errors, create_job, wait_for_status
from tests.support.subscriptions import gql_session, gql_subscribe

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
    queues: [default, team-b]
    defaultImage: registry.example/train:1
    priorityClasses: [{{name: urgent, value: 100}}]
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


WAITING = """
query Waiting($id: ID!) {
  job(id: $id) { jobId status held queuePosition priority queue
                    pendingReason { code message since } }
}
"""
HOLD = """mutation Hold($id: ID!) { holdJob(input: {jobId: $id}) {
  job { jobId held pendingReason { code } } userErrors { code message } } }"""
RELEASE = """mutation Release($id: ID!) { releaseJob(input: {jobId: $id}) {
  job { jobId held } userErrors { code message } } }"""
UPDATE = """mutation Update($id: ID!, $priority: Int, $queue: String) {
  updateJob(input: {jobId: $id, priority: $priority, queue: $queue}) {
    job { jobId priority queue } userErrors { code message field } } }"""
WATCH = """subscription Watch($id: ID!) {
  jobUpdated(jobId: $id) { jobId status pendingReason { code message since } } }"""
# The flavor assigner's message (kueue v0.19.2 pkg/scheduler/flavorassigner/flavorassigner.go).
UNUSED = ("couldn't assign flavors to pod set main: insufficient unused quota for "
          "nvidia.com/gpu in flavor default-flavor, 2 more needed")


async def waiting_job(client, job_id: str, predicate, timeout: float = 20) -> dict:
    """Read the job until `predicate` holds. A queue position is read from Kueue when the
    job is read, and no event announces that it moved (as in test_graphql_flows.wait_for_job,
    a bounded re-read)."""
    async with asyncio.timeout(timeout):
        while True:
            job = (await client.execute(WAITING, {"id": job_id}))["job"]
            if predicate(job):
                return job
            await asyncio.sleep(0.05)


async def test_a_kueue_jobs_reason_and_position_over_graphql(nodes_cluster, tmp_path):
    cluster, alice = nodes_cluster, nodes_cluster.alice
    fake = cluster.fake
    fake.kueue.visibility = True
    jobs = []
    for name in ("first", "second"):
        # Their own LocalQueue: the other test's job waits in "default".
        job = await create_job(alice, **shell_job("true", tmp_path, name=name,
                                                  resourcePoolId="kq", queue="team-b"))
        await fake.wait_for(lambda job=job: fake.workload(job["jobId"]))
        await fake.advance(1)  # Kueue orders equal priorities by creation time, to the second
        jobs.append(job["jobId"])
    first, second = jobs
    # Kueue's scheduler cannot fit the first: its condition is the reason, streamed too.
    async with gql_session(cluster.url, alice.token) as session:
        stream = gql_subscribe(session, WATCH, {"id": first})
        fake.kueue_hold(first, "Pending", UNUSED)
        async with asyncio.timeout(20):
            async for update in stream:
                reason = update["jobUpdated"]["pendingReason"]
                if reason and reason["code"] == "WAITING_FOR_QUOTA":
                    break
    job = await waiting_job(alice, first, lambda j: (j["pendingReason"] or {}).get("code")
                            == "WAITING_FOR_QUOTA")
    assert job["status"] == "QUEUED"
    assert job["pendingReason"]["message"] == f"Pending: {UNUSED}"
    assert job["queuePosition"] == 1
    assert (await alice.execute(WAITING, {"id": second}))["job"]["queuePosition"] == 2
    # Held: Kueue's Workload deactivated, the reason HELD, no position; the second moves up.
    held = (await alice.execute(HOLD, {"id": first}))["holdJob"]
    assert held["userErrors"] == [] and held["job"]["held"] is True
    assert fake.workload(first)["spec"]["active"] is False
    job = await waiting_job(alice, first, lambda j: j["pendingReason"]["code"] == "HELD")
    assert job["queuePosition"] is None
    await waiting_job(alice, second, lambda j: j["queuePosition"] == 1)
    # Released: back in its place, ahead of the second.
    released = (await alice.execute(RELEASE, {"id": first}))["releaseJob"]
    assert released["userErrors"] == []
    assert fake.workload(first)["spec"]["active"] is True
    await waiting_job(alice, first, lambda j: j["queuePosition"] == 1)
    await waiting_job(alice, second, lambda j: j["queuePosition"] == 2)
    # Re-ordered: priority 100 takes the pool's class "urgent" (Kueue gives the Workload its
    # value) and the second goes first.
    fake.kueue.add_priority_class("urgent", 100)
    updated = (await alice.execute(UPDATE, {"id": second, "priority": 100}))["updateJob"]
    assert updated["userErrors"] == [] and updated["job"]["priority"] == 100
    await fake.wait_for(lambda: fake.workload(second)["spec"]["priority"] == 100)
    await waiting_job(alice, second, lambda j: j["queuePosition"] == 1)
    await waiting_job(alice, first, lambda j: j["queuePosition"] == 2)
    # Admitted: it runs, no reason, no position.
    fake.admit(second)
    done = await wait_for_status(alice, second, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    job = (await alice.execute(WAITING, {"id": second}))["job"]
    assert job["pendingReason"] is None and job["queuePosition"] is None
