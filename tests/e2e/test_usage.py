"""Usage through GraphQL on a real server with the local runtime: accounting rows that add
up to what the jobs' replicas recorded, pools' usage while jobs run, wait and are held,
`poolUpdated`, and the Prometheus counters."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from prometheus_client.parser import text_string_to_metric_families

from app.store.db import Database
from app.store.jobs import JobRepository, PodRepository
from tests.support.jobs import DELETE_JOB, PY, STOP_JOB, create_job, wait_for_status
from tests.support.server import GraphQLClient, GraphQLErrors, Server
from tests.support.subscriptions import gql_session, gql_subscribe

POOLS = """
pools:
  - id: acct
    runtime: local
    maxConcurrentJobs: 4
    queues: [default, high]
  - id: tight
    runtime: local
    maxConcurrentJobs: 1
    capacity: {cpus: 8, memory: 32, gpu: 4}
  - id: closed
    runtime: local
    allowedGroups: [vip]
"""

USAGE = """
query($groupBy: UsageGroupBy!, $filter: UsageFilterInput) {
  usage(groupBy: $groupBy, filter: $filter) {
    key jobs succeeded failed wallSeconds gpuSeconds cpuSeconds queueSeconds
  }
}
"""
POOL_FIELDS = """
  poolId runningJobs queuedJobs heldJobs slotsInUse slotsTotal gpusInUse cpusInUse memoryInUse
  gpusTotal cpusTotal memoryTotal
"""
POOLS_QUERY = f"{{ resourcePools {{ id usage {{ {POOL_FIELDS} }} }} }}"
POOL_UPDATED = f"subscription($id: ID!) {{ poolUpdated(poolId: $id) {{ {POOL_FIELDS} }} }}"


class Accounting:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.admin_token = server.token("root", admin=True)
        self.alice_token = server.token("alice")
        self.bob_token = server.token("bob")
        self.admin = GraphQLClient(server.url, self.admin_token)
        self.alice = GraphQLClient(server.url, self.alice_token)
        self.bob = GraphQLClient(server.url, self.bob_token)
        url = server.env.get("JOBGRAPH_DATABASE_URL")
        self.db = Database(url or f"sqlite+aiosqlite:///{server.data_dir / 'jobgraph.db'}")

    async def close(self) -> None:
        for client in (self.admin, self.alice, self.bob):
            await client.close()
        await self.db.dispose()


@pytest.fixture(scope="module")
async def acct(server_factory, tmp_path_factory):
    pools = Path(tmp_path_factory.mktemp("usage-pools")) / "pools.yaml"
    pools.write_text(POOLS)
    server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
    env = Accounting(server)
    server.start()
    yield env
    await env.close()
    server.stop()


def gated(gate: Path) -> list[str]:
    """A command that runs until the test creates `gate`."""
    return [PY, "-c", f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)"]


def seconds(later: datetime | None, earlier: datetime | None) -> float:
    return (later - earlier).total_seconds() if later and earlier else 0.0


async def recorded(db: Database, job_ids: list[str]) -> dict[str, dict]:
    """What each job used, computed here from the times the database recorded."""
    async with db.reader() as session:
        jobs = {job_id: await JobRepository(session).get(job_id) for job_id in job_ids}
        pods = await PodRepository(session).for_jobs(job_ids, visible_to=None)
    used = {}
    for job_id, job in jobs.items():
        replica_seconds = sum(
            seconds(min(p.finished_at or job.finished_at, job.finished_at), p.started_at)
            for p in pods[job_id]
        )
        assert len(pods[job_id]) == job.spec.replicas and replica_seconds > 0 or not job.started_at
        used[job_id] = {
            "owner": job.owner, "queue": job.queue, "status": job.status.value,
            "wallSeconds": seconds(job.finished_at, job.started_at),
            "queueSeconds": seconds(job.started_at or job.finished_at, job.created_at),
            "gpuSeconds": job.spec.resources.gpu * replica_seconds,
            "cpuSeconds": (job.spec.resources.cpus or 0) * replica_seconds,
        }
    return used


def totals(used: dict[str, dict], key) -> dict[str, dict]:
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for job in used.values():
        row = rows[key(job)]
        row["jobs"] += 1
        row["succeeded"] += job["status"] == "SUCCEEDED"
        row["failed"] += job["status"] == "FAILED"
        for field in ("wallSeconds", "gpuSeconds", "cpuSeconds", "queueSeconds"):
            row[field] += job[field]
    return rows


def assert_rows(rows: list[dict], expected: dict[str, dict]) -> None:
    assert [r["key"] for r in rows] == sorted(expected)
    for row in rows:
        want = expected[row["key"]]
        assert (row["jobs"], row["succeeded"], row["failed"]) == (
            want["jobs"], want["succeeded"], want["failed"]
        ), row
        for field in ("wallSeconds", "gpuSeconds", "cpuSeconds", "queueSeconds"):
            # SQLite's time functions work to the millisecond (a few per sum).
            assert row[field] == pytest.approx(want[field], abs=0.02), (row["key"], field)


async def metrics(acct: Accounting) -> dict[tuple[str, tuple], float]:
    async with httpx.AsyncClient(base_url=acct.server.url) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {acct.admin_token}"})
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_usage_rows_add_up_to_the_jobs_that_ran(acct, tmp_path):
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    window = {"since": since, "resourcePoolId": "acct"}
    gate = tmp_path / "gate"
    a1 = await create_job(
        acct.alice, name="a1", resourcePoolId="acct", replicas=2,
        resources={"gpu": 1, "cpus": 2}, command=gated(gate),
    )
    a2 = await create_job(
        acct.alice, name="a2", resourcePoolId="acct", queue="high",
        resources={"cpus": 1}, command=[PY, "-c", "raise SystemExit(3)"],
    )
    b1 = await create_job(
        acct.bob, name="b1", resourcePoolId="acct", resources={"gpu": 2, "cpus": 0.5},
        command=gated(gate),
    )
    await wait_for_status(acct.alice, a1["jobId"], "RUNNING")
    await wait_for_status(acct.bob, b1["jobId"], "RUNNING")
    # While they run, their replicas count until now.
    running = (await acct.admin.execute(USAGE, {"groupBy": "POOL", "filter": window}))["usage"]
    assert running[0]["key"] == "acct" and running[0]["gpuSeconds"] > 0
    gate.touch()
    await wait_for_status(acct.alice, a1["jobId"], "SUCCEEDED")
    await wait_for_status(acct.bob, b1["jobId"], "SUCCEEDED")
    await wait_for_status(acct.alice, a2["jobId"], "FAILED")
    used = await recorded(acct.db, [a1["jobId"], a2["jobId"], b1["jobId"]])
    assert used[a1["jobId"]]["gpuSeconds"] > 0 and used[b1["jobId"]]["cpuSeconds"] > 0

    async def usage(client: GraphQLClient, group_by: str, **extra) -> list[dict]:
        return (await client.execute(USAGE, {"groupBy": group_by, "filter": {**window, **extra}}))["usage"]

    assert_rows(await usage(acct.admin, "OWNER"), totals(used, lambda j: j["owner"]))
    assert_rows(await usage(acct.admin, "POOL"), totals(used, lambda j: "acct"))
    assert_rows(await usage(acct.admin, "QUEUE"), totals(used, lambda j: f"acct/{j['queue']}"))
    # By UTC day: the jobs ran within the last minutes, on one day or across midnight.
    days = await usage(acct.admin, "DAY")
    today = datetime.now(UTC).date().isoformat()
    assert days[-1]["key"] == today and len(days) <= 2
    whole = totals(used, lambda j: "all")["all"]
    for field in ("wallSeconds", "gpuSeconds", "cpuSeconds", "queueSeconds"):
        assert sum(d[field] for d in days) == pytest.approx(whole[field], abs=0.02), field
    assert sum(d["succeeded"] for d in days) == 2 and sum(d["failed"] for d in days) == 1

    # A user sees their own rows only; asking for someone else's gives none.
    alice_only = {k: v for k, v in used.items() if v["owner"] == "alice"}
    assert_rows(await usage(acct.alice, "OWNER"), totals(alice_only, lambda j: j["owner"]))
    assert_rows(await usage(acct.alice, "POOL"), totals(alice_only, lambda j: "acct"))
    assert await usage(acct.alice, "OWNER", owner="bob") == []
    assert [r["key"] for r in await usage(acct.bob, "QUEUE")] == ["acct/default"]
    assert [r["key"] for r in await usage(acct.admin, "OWNER", owner="bob")] == ["bob"]

    # The Prometheus counters counted the same, once per job.
    samples = await metrics(acct)
    by_labels = totals(used, lambda j: (j["queue"], j["owner"]))
    for (queue, owner), want in by_labels.items():
        labels = (("owner", owner), ("pool", "acct"), ("queue", queue))
        assert samples[("jobgraph_gpu_seconds_total", labels)] == pytest.approx(want["gpuSeconds"], abs=0.02)
        assert samples[("jobgraph_cpu_seconds_total", labels)] == pytest.approx(want["cpuSeconds"], abs=0.02)
    for job in used.values():
        labels = (("owner", job["owner"]), ("pool", "acct"), ("queue", job["queue"]), ("status", job["status"]))
        assert samples[("jobgraph_jobs_finished_total", labels)] == 1


async def test_a_usage_window_that_ends_before_it_starts_is_refused(acct):
    window = {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    with pytest.raises(GraphQLErrors) as refused:
        await acct.alice.execute(USAGE, {"groupBy": "DAY", "filter": window})
    assert refused.value.code == "INVALID_ARGUMENT" and "must not be after" in str(refused.value)
    long = {"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    with pytest.raises(GraphQLErrors) as refused:
        await acct.alice.execute(USAGE, {"groupBy": "DAY", "filter": long})
    assert refused.value.code == "INVALID_ARGUMENT" and "366 days" in str(refused.value)


async def _until(stream, condition, timeout: float = 30.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            usage = (await anext(stream))["poolUpdated"]
            if condition(usage):
                return usage


async def _pool(client: GraphQLClient, pool_id: str) -> dict | None:
    pools = (await client.execute(POOLS_QUERY))["resourcePools"]
    return next((p["usage"] for p in pools if p["id"] == pool_id), None)


HOLD_JOB = "mutation($id: ID!) { holdJob(input: {jobId: $id}) { job { held } userErrors { code message } } }"
TIGHT = {"poolId": "tight", "slotsTotal": 1, "gpusTotal": 4, "cpusTotal": 8.0, "memoryTotal": 32.0}


async def test_pool_usage_while_jobs_run_wait_and_are_held(acct, tmp_path):
    first_gate, second_gate = tmp_path / "first", tmp_path / "second"
    t1 = await create_job(
        acct.alice, resourcePoolId="tight", replicas=2,
        resources={"gpu": 1, "cpus": 1.5, "memory": 2}, command=gated(first_gate),
    )
    await wait_for_status(acct.alice, t1["jobId"], "RUNNING")
    # Bob has no job there: he sees the pool's aggregate all the same.
    async with gql_session(acct.server.url, acct.bob_token) as session:
        stream = gql_subscribe(session, POOL_UPDATED, {"id": "tight"})
        now = (await anext(stream))["poolUpdated"]
        assert now == {
            **TIGHT, "runningJobs": 1, "queuedJobs": 0, "heldJobs": 0, "slotsInUse": 1,
            "gpusInUse": 2, "cpusInUse": 3.0, "memoryInUse": 4.0,
        }
        t2 = await create_job(acct.alice, resourcePoolId="tight", command=gated(second_gate))
        t3 = await create_job(acct.alice, resourcePoolId="tight", command=[PY, "-c", "pass"])
        queued = await _until(stream, lambda u: u["queuedJobs"] == 2)
        assert (queued["runningJobs"], queued["heldJobs"], queued["gpusInUse"]) == (1, 0, 2)
        assert await _pool(acct.bob, "tight") == queued
        held = (await acct.alice.execute(HOLD_JOB, {"id": t3["jobId"]}))["holdJob"]
        assert held == {"job": {"held": True}, "userErrors": []}
        assert (await _until(stream, lambda u: u["heldJobs"] == 1))["queuedJobs"] == 1
        # The first job ends: the second takes the slot, the held one stays held.
        first_gate.touch()
        after = await _until(stream, lambda u: u["runningJobs"] == 1 and u["queuedJobs"] == 0)
        assert after == {
            **TIGHT, "runningJobs": 1, "queuedJobs": 0, "heldJobs": 1, "slotsInUse": 1,
            "gpusInUse": 0, "cpusInUse": 0.0, "memoryInUse": 0.0,
        }
        assert await _pool(acct.alice, "tight") == after
        # Deleting the held job announces its pool (no job change does).
        deleted = (await acct.alice.execute(DELETE_JOB, {"id": t3["jobId"]}))["deleteJob"]
        assert deleted["userErrors"] == []
        assert (await _until(stream, lambda u: u["heldJobs"] == 0))["runningJobs"] == 1
        stopped = (await acct.alice.execute(STOP_JOB, {"id": t2["jobId"]}))["stopJob"]
        assert stopped["userErrors"] == []
        idle = await _until(stream, lambda u: u["runningJobs"] == 0)
        assert (idle["queuedJobs"], idle["heldJobs"], idle["slotsInUse"]) == (0, 0, 0)
        await stream.aclose()


async def test_a_pool_one_may_not_use_is_not_found(acct):
    assert await _pool(acct.bob, "closed") is None
    closed = await _pool(acct.admin, "closed")
    assert closed["slotsTotal"] == 4 and closed["gpusTotal"] is None and closed["cpusTotal"] is None
    async with gql_session(acct.server.url, acct.bob_token) as session:
        with pytest.raises(TransportQueryError) as refused:
            await anext(gql_subscribe(session, POOL_UPDATED, {"id": "closed"}))
    assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert "'closed' not found" in refused.value.errors[0]["message"]
