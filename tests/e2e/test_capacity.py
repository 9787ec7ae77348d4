"""Refusing the impossible at submit (issue 13): a job whose replicas together ask for
more than its pool's declared capacity is a userError / 422 `EXCEEDS_POOL_CAPACITY`,
and nothing about it is recorded: no job, no audit entry of a create, no process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.live.terminal import audit_entries
from tests.support.jobs import PY, create_errors, create_job, wait_for_status
from tests.support.rest import Rest
from tests.support.server import GraphQLClient

POOLS = """
pools:
  - id: local
    runtime: local
    queues: [default]
  - id: small
    runtime: local
    maxConcurrentJobs: 2
    queues: [default]
    capacity: {cpus: 4, memory: 8, gpu: 2}
"""
COUNT = "{ jobs(first: 1) { totalCount } }"
RERUN = "mutation R($id: ID!) { rerunJob(input: {jobId: $id}) { job { jobId } userErrors { code } } }"


class Capacity:
    def __init__(self, server) -> None:
        self.server = server
        self.clients: list[GraphQLClient | Rest] = []
        self.admin = self.graphql(server.token("root", admin=True))

    def graphql(self, token: str) -> GraphQLClient:
        client = GraphQLClient(self.server.url, token)
        self.clients.append(client)
        return client

    def user(self, name: str) -> tuple[GraphQLClient, Rest]:
        token = self.server.token(name)
        graphql = self.graphql(token)
        rest = Rest(self.server.url, token, graphql)
        self.clients.append(rest)
        return graphql, rest

    def processes_started(self) -> list[Path]:
        """Job directories of the local runtime: one exists for each job it was given."""
        root = self.server.data_dir / "local" / "small"
        return sorted(root.iterdir()) if root.exists() else []


@pytest.fixture(scope="module")
async def capacity(server_factory, tmp_path_factory) -> AsyncIterator[Capacity]:
    pools = tmp_path_factory.mktemp("capacity") / "pools.yaml"
    pools.write_text(POOLS)
    server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
    env = Capacity(server)
    server.start()
    yield env
    for client in env.clients:
        await client.close()


async def nothing_recorded(
    env: Capacity, user: GraphQLClient, name: str, processes_before: list[Path]
) -> None:
    assert (await user.execute(COUNT))["jobs"]["totalCount"] == 0
    assert await audit_entries(env.admin, actor=name) == []
    assert env.processes_started() == processes_before


async def test_graphql_refuses_more_than_the_pool_has_and_records_nothing(capacity):
    user, _ = capacity.user("cap-graphql")
    processes = capacity.processes_started()
    errors = await create_errors(
        user, name="too big", command=[PY, "-c", "pass"], resourcePoolId="small", replicas=3,
        resources={"gpu": 1}, idempotencyKey="once",
    )
    assert errors == [{
        "field": "resources.gpu", "code": "EXCEEDS_POOL_CAPACITY",
        "message": "the job can never run in pool 'small': its 3 replicas ask for 3 GPUs "
        "together (1 GPU each), and the pool has at most 2 GPUs in all (its declared capacity)",
    }]
    errors = await create_errors(
        user, name="too big", command=[PY, "-c", "pass"], resourcePoolId="small",
        resources={"memory": 8.5},
    )
    assert errors[0]["code"] == "EXCEEDS_POOL_CAPACITY"
    assert "asks for 8.5 GiB of memory" in errors[0]["message"]
    assert "at most 8 GiB of memory" in errors[0]["message"]
    await nothing_recorded(capacity, user, "cap-graphql", processes)
    # The idempotency key of a refused create was not taken: the fitting job gets it.
    job = await create_job(
        user, command=[PY, "-c", "pass"], resourcePoolId="small", resources={"gpu": 2},
        idempotencyKey="once",
    )
    assert job["status"] in {"PENDING", "QUEUED", "RUNNING", "SUCCEEDED"}


async def test_exactly_the_pools_capacity_is_accepted_and_runs(capacity):
    user, _ = capacity.user("cap-exact")
    job = await create_job(
        user, command=[PY, "-c", "pass"], resourcePoolId="small", replicas=2,
        resources={"cpus": 2, "memory": 4, "gpu": 1},
    )
    done = await wait_for_status(user, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED" and len(done["pods"]) == 2


async def test_a_pool_without_declared_capacity_is_not_checked(capacity):
    user, _ = capacity.user("cap-open")
    job = await create_job(
        user, command=[PY, "-c", "pass"], resourcePoolId="local", replicas=2,
        resources={"gpu": 8, "memory": 1024},
    )
    assert job["resourcePoolId"] == "local"


async def test_pools_show_their_capacity(capacity):
    user, _ = capacity.user("cap-pools")
    pools = (await user.execute("{ resourcePools { id capacity { cpus memory gpu } } }"))["resourcePools"]
    assert pools == [
        {"id": "local", "capacity": None},
        {"id": "small", "capacity": {"cpus": 4.0, "memory": 8.0, "gpu": 2}},
    ]


async def test_rest_refuses_it_with_422_and_records_nothing(capacity):
    user, rest = capacity.user("cap-rest")
    processes = capacity.processes_started()
    answer = await rest.call("POST", "/api/jobs/create", status=422, json={
        "jobName": "too big", "image": "img:1", "command": [PY, "-c", "pass"],
        "resourcePoolId": "small", "replicas": 2, "resources": {"cpus": 2.5},
    })
    assert answer["code"] == "EXCEEDS_POOL_CAPACITY" and answer["field"] == "resources.cpus"
    assert answer["message"] == (
        "the job can never run in pool 'small': its 2 replicas ask for 5 CPUs together "
        "(2.5 CPUs each), and the pool has at most 4 CPUs in all (its declared capacity)"
    )
    await nothing_recorded(capacity, user, "cap-rest", processes)


async def test_after_the_pool_shrank_a_retry_answers_its_job_and_a_rerun_is_refused(
    server_factory, tmp_path
):
    """The capacity is checked after the idempotency key: a client retrying a create that
    was accepted (its answer lost) gets its job, even if the pool's declared capacity has
    since shrunk below it; a new job of that size is refused, and so is a rerun of the
    old one (it goes through the create path)."""
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS)
    server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
    token = server.token("cap-retry")
    server.start()
    user = GraphQLClient(server.url, token)
    try:
        spec = {"command": [PY, "-c", "pass"], "resourcePoolId": "small", "resources": {"gpu": 2}}
        job = await create_job(user, **spec, idempotencyKey="retry-me")
        await wait_for_status(user, job["jobId"], "SUCCEEDED")
        server.stop()
        pools.write_text(POOLS.replace("gpu: 2}", "gpu: 1}"))
        server.start()
        again = await create_job(user, **spec, idempotencyKey="retry-me")
        assert again["jobId"] == job["jobId"]
        errors = await create_errors(user, name="new", **spec, idempotencyKey="another")
        assert errors[0]["code"] == "EXCEEDS_POOL_CAPACITY"
        assert "at most 1 GPU in all" in errors[0]["message"]
        rerun = (await user.execute(RERUN, {"id": job["jobId"]}))["rerunJob"]
        assert rerun["job"] is None
        assert [e["code"] for e in rerun["userErrors"]] == ["EXCEEDS_POOL_CAPACITY"]
        assert (await user.execute(COUNT))["jobs"]["totalCount"] == 1
    finally:
        await user.close()
