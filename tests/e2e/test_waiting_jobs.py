"""Waiting jobs you can see and steer (issue 13), through GraphQL on the local runtime:
`pendingReason`, `queuePosition`, `held`, and the `updateJob`, `holdJob` and `releaseJob`
mutations. Each test has a pool of its own, so none sees another's jobs in its queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.live.terminal import audit_entries
from tests.support.jobs import PY, create_job, wait_for_status
from tests.support.server import GraphQLClient
from tests.support.subscriptions import gql_session, gql_subscribe

POOLS = """
pools:
  - id: overtake
    runtime: local
    maxConcurrentJobs: 1
  - id: priority
    runtime: local
    maxConcurrentJobs: 1
    queues: [default, high]
  - id: pair
    runtime: local
    maxConcurrentJobs: 2
  - id: rules
    runtime: local
    maxConcurrentJobs: 1
    queues: [default, high]
"""

WAITING_FIELDS = "jobId status held priority queue config startedAt finishedAt queuePosition " \
    "pendingReason { code message since }"

GET = f"query Get($id: ID!) {{ job(id: $id) {{ {WAITING_FIELDS} }} }}"
WATCH = f"subscription Watch($id: ID!) {{ jobUpdated(jobId: $id) {{ {WAITING_FIELDS} }} }}"
LIST = f"""
query List($pool: String!) {{
  jobs(filter: {{resourcePoolId: $pool}}, first: 50) {{ nodes {{ {WAITING_FIELDS} }} }}
}}"""
UPDATE = f"""
mutation Update($id: ID!, $priority: Int, $queue: String) {{
  updateJob(input: {{jobId: $id, priority: $priority, queue: $queue}}) {{
    job {{ {WAITING_FIELDS} }} userErrors {{ field message code }}
  }}
}}"""
HOLD = f"""
mutation Hold($id: ID!) {{
  holdJob(input: {{jobId: $id}}) {{ job {{ {WAITING_FIELDS} }} userErrors {{ field message code }} }}
}}"""
CREATE = f"""
mutation Create($input: CreateJobInput!) {{
  createJob(input: $input) {{ job {{ {WAITING_FIELDS} }} userErrors {{ field message code }} }}
}}"""
RELEASE = f"""
mutation Release($id: ID!) {{
  releaseJob(input: {{jobId: $id}}) {{ job {{ {WAITING_FIELDS} }} userErrors {{ field message code }} }}
}}"""


class Env:
    def __init__(self, server) -> None:
        self.server = server
        self.clients: list[GraphQLClient] = []
        self.admin = self.client(server.token("root", admin=True))
        self.alice = self.client(server.token("alice"))
        self.bob = self.client(server.token("bob"))

    def client(self, token: str) -> GraphQLClient:
        client = GraphQLClient(self.server.url, token)
        self.clients.append(client)
        return client


@pytest.fixture(scope="module")
async def env(server_factory, tmp_path_factory) -> AsyncIterator[Env]:
    pools = tmp_path_factory.mktemp("waiting") / "pools.yaml"
    pools.write_text(POOLS)
    server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
    env = Env(server)
    server.start()
    yield env
    for client in env.clients:
        await client.close()


def gated(gate: Path) -> list[str]:
    """A command that runs until `gate` exists (the test opens it)."""
    return [PY, "-c", f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)"]


QUICK = [PY, "-c", "print('done')"]


async def get(client: GraphQLClient, job_id: str) -> dict:
    return (await client.execute(GET, {"id": job_id}))["job"]


async def mutate(client: GraphQLClient, document: str, **variables: object) -> dict:
    data = await client.execute(document, variables)
    [payload] = data.values()
    return payload


async def steered(client: GraphQLClient, document: str, **variables: object) -> dict:
    payload = await mutate(client, document, **variables)
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["job"]


async def wait_until(
    client: GraphQLClient, job_id: str, predicate: Callable[[dict], bool], timeout: float = 30.0
) -> dict:
    """The job as `jobUpdated` delivered it when `predicate` first held (the job now,
    then each change): waiting on events, not polling."""
    seen = []
    async with asyncio.timeout(timeout), gql_session(client.url, client.token) as session:
        async for result in gql_subscribe(session, WATCH, {"id": job_id}):
            job = result["jobUpdated"]
            seen.append((job["status"], job["pendingReason"]))
            if predicate(job):
                return job
    raise AssertionError(f"job {job_id} ended without matching: {seen}")


def reason_code(code: str) -> Callable[[dict], bool]:
    return lambda job: (job["pendingReason"] or {}).get("code") == code


async def positions(client: GraphQLClient, pool: str) -> dict[str, int | None]:
    data = await client.execute(LIST, {"pool": pool})
    return {job["jobId"]: job["queuePosition"] for job in data["jobs"]["nodes"]}


async def test_a_held_job_is_overtaken_then_released_back_in_its_place(env, tmp_path):
    alice = env.alice
    blocker = await create_job(alice, command=gated(tmp_path / "blocker"), resourcePoolId="overtake")
    await wait_for_status(alice, blocker["jobId"], "RUNNING")
    first = await create_job(alice, command=QUICK, resourcePoolId="overtake", name="first")
    second = await create_job(alice, command=gated(tmp_path / "second"), resourcePoolId="overtake")
    third = await create_job(alice, command=QUICK, resourcePoolId="overtake", name="third")
    ids = [first["jobId"], second["jobId"], third["jobId"]]
    for job_id in ids:
        await wait_until(alice, job_id, reason_code("WAITING_FOR_SLOT"))
    assert await positions(alice, "overtake") == {
        blocker["jobId"]: None, ids[0]: 1, ids[1]: 2, ids[2]: 3,
    }

    held = await steered(alice, HOLD, id=ids[0])
    assert held["held"] is True and held["status"] == "QUEUED"
    assert held["pendingReason"]["code"] == "HELD" and held["queuePosition"] is None
    assert await positions(alice, "overtake") == {
        blocker["jobId"]: None, ids[0]: None, ids[1]: 1, ids[2]: 2,
    }

    (tmp_path / "blocker").touch()  # the slot frees: `second` overtakes the held job
    await wait_for_status(alice, second["jobId"], "RUNNING")
    still = await get(alice, ids[0])
    assert (still["status"], still["held"], still["pendingReason"]["code"]) == ("QUEUED", True, "HELD")

    released = await steered(alice, RELEASE, id=ids[0])
    assert released["held"] is False
    assert released["queuePosition"] == 1  # ahead of `third`, which came later
    now = await wait_until(alice, ids[0], reason_code("WAITING_FOR_SLOT"))
    assert now["queuePosition"] == 1 and not now["held"]
    assert (await get(alice, ids[2]))["queuePosition"] == 2

    (tmp_path / "second").touch()
    done = {job_id: await wait_for_status(alice, job_id, "SUCCEEDED") for job_id in ids}
    assert done[ids[1]]["startedAt"] <= done[ids[0]]["startedAt"] <= done[ids[2]]["startedAt"]
    assert done[ids[0]]["finishedAt"] <= done[ids[2]]["startedAt"]  # one slot: in turn
    final = await get(alice, ids[0])
    assert final["pendingReason"] is None and final["queuePosition"] is None

    trail = await audit_entries(env.admin, jobId=ids[0])
    assert [(e["action"], e["outcome"], e["actor"]) for e in trail] == [
        ("job.create", "allowed", "alice"),
        ("job.hold", "allowed", "alice"),
        ("job.release", "allowed", "alice"),
    ]


async def test_a_higher_priority_moves_a_job_ahead_and_it_starts_first(env, tmp_path):
    alice = env.alice
    blocker = await create_job(alice, command=gated(tmp_path / "blocker"), resourcePoolId="priority")
    await wait_for_status(alice, blocker["jobId"], "RUNNING")
    early = await create_job(alice, command=QUICK, resourcePoolId="priority", name="early")
    late = await create_job(alice, command=QUICK, resourcePoolId="priority", name="late")
    await wait_until(alice, late["jobId"], reason_code("WAITING_FOR_SLOT"))
    assert (await get(alice, early["jobId"]))["queuePosition"] == 1
    assert (await get(alice, late["jobId"]))["queuePosition"] == 2

    moved = await steered(alice, UPDATE, id=late["jobId"], priority=5)
    assert (moved["priority"], moved["queue"], moved["config"]["priority"]) == (5, "default", 5)
    assert moved["queuePosition"] == 1
    assert (await get(alice, early["jobId"]))["queuePosition"] == 2

    (tmp_path / "blocker").touch()
    late_done = await wait_for_status(alice, late["jobId"], "SUCCEEDED")
    early_done = await wait_for_status(alice, early["jobId"], "SUCCEEDED")
    assert late_done["finishedAt"] <= early_done["startedAt"]  # `late` went first

    [update] = [e for e in await audit_entries(env.admin, jobId=late["jobId"])
                if e["action"] == "job.update"]
    assert (update["actor"], update["outcome"]) == ("alice", "allowed")
    assert update["detail"] == "priority 0 -> 5, queue default -> default"


async def test_queue_moves_count_in_the_new_queue_and_must_be_the_pools(env, tmp_path):
    alice = env.alice
    blocker = await create_job(alice, command=gated(tmp_path / "blocker"), resourcePoolId="rules")
    await wait_for_status(alice, blocker["jobId"], "RUNNING")
    jobs = [await create_job(alice, command=QUICK, resourcePoolId="rules") for _ in range(3)]
    await wait_until(alice, jobs[2]["jobId"], reason_code("WAITING_FOR_SLOT"))

    wrong = await mutate(alice, UPDATE, id=jobs[1]["jobId"], queue="nowhere")
    assert wrong["job"] is None
    [error] = wrong["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_ARGUMENT", "queue")
    assert "default, high" in error["message"]
    nothing = await mutate(alice, UPDATE, id=jobs[1]["jobId"])
    assert nothing["userErrors"][0]["code"] == "INVALID_ARGUMENT"

    moved = await steered(alice, UPDATE, id=jobs[2]["jobId"], queue="high")
    assert (moved["queue"], moved["config"]["queue"], moved["queuePosition"]) == ("high", "high", 1)
    assert await positions(alice, "rules") == {
        blocker["jobId"]: None, jobs[0]["jobId"]: 1, jobs[1]["jobId"]: 2, jobs[2]["jobId"]: 1,
    }
    listed = (await alice.execute(
        '{ jobs(filter: {resourcePoolId: "rules", queue: "high"}) { nodes { jobId } } }'
    ))["jobs"]["nodes"]
    assert listed == [{"jobId": jobs[2]["jobId"]}]
    (tmp_path / "blocker").touch()
    for job in jobs:
        await wait_for_status(alice, job["jobId"], "SUCCEEDED")


async def test_why_a_job_waits_follows_the_slots(env, tmp_path):
    alice, bob = env.alice, env.bob
    mine = await create_job(alice, command=gated(tmp_path / "mine"), resourcePoolId="pair")
    theirs = await create_job(bob, command=gated(tmp_path / "theirs"), resourcePoolId="pair")
    await wait_for_status(alice, mine["jobId"], "RUNNING")
    await wait_for_status(bob, theirs["jobId"], "RUNNING")

    waiting = await steered(
        alice, CREATE, input={"name": "waits", "command": QUICK, "resourcePoolId": "pair"}
    )
    # Recorded, not yet accepted by the runtime when the record was made.
    assert waiting["pendingReason"]["code"] == "SUBMITTING"
    slot = await wait_until(alice, waiting["jobId"], reason_code("WAITING_FOR_SLOT"))
    assert slot["status"] == "QUEUED" and slot["queuePosition"] == 1
    assert slot["pendingReason"]["message"] == (
        "waiting for a free job slot: 2 of 2 slot(s) are taken, 1 of them by alice's own jobs"
    )

    # bob's urgent job waits ahead of alice's; alice's own job ends and bob's takes its
    # slot: alice's job now waits for two slots both taken by someone else.
    urgent = await create_job(bob, command=gated(tmp_path / "urgent"), resourcePoolId="pair",
                              priority=9)
    await wait_until(bob, urgent["jobId"], reason_code("WAITING_FOR_SLOT"))
    assert (await get(alice, waiting["jobId"]))["queuePosition"] == 2
    (tmp_path / "mine").touch()
    await wait_for_status(bob, urgent["jobId"], "RUNNING")
    now = await wait_until(alice, waiting["jobId"],
                           lambda job: "0 of them" in job["pendingReason"]["message"])
    assert now["pendingReason"]["message"] == (
        "waiting for a free job slot: 2 of 2 slot(s) are taken, 0 of them by alice's own jobs"
    )
    assert now["pendingReason"]["since"] == slot["pendingReason"]["since"]  # same code: kept
    assert now["queuePosition"] == 1

    held = await steered(alice, HOLD, id=waiting["jobId"])
    assert held["pendingReason"]["code"] == "HELD"
    assert held["pendingReason"]["since"] > slot["pendingReason"]["since"]
    reported = await wait_until(alice, waiting["jobId"], reason_code("HELD"))
    assert reported["pendingReason"] == held["pendingReason"]  # the runtime's word agrees
    assert held["pendingReason"]["message"] == (
        "held by its owner or an administrator; it starts only once released"
    )

    (tmp_path / "theirs").touch()  # a slot frees, but the job is held: a later one runs
    await wait_for_status(bob, theirs["jobId"], "SUCCEEDED")
    later = await create_job(bob, command=QUICK, resourcePoolId="pair")
    await wait_for_status(bob, later["jobId"], "SUCCEEDED")
    assert (await get(alice, waiting["jobId"]))["status"] == "QUEUED"
    await steered(alice, RELEASE, id=waiting["jobId"])
    await wait_for_status(alice, waiting["jobId"], "SUCCEEDED")
    done = await get(alice, waiting["jobId"])
    assert done["pendingReason"] is None and done["queuePosition"] is None
    (tmp_path / "urgent").touch()
    await wait_for_status(bob, urgent["jobId"], "SUCCEEDED")


async def test_only_a_waiting_job_of_ones_own_can_be_steered(env, tmp_path):
    alice, bob, admin = env.alice, env.bob, env.admin
    running = await create_job(alice, command=gated(tmp_path / "running"), resourcePoolId="rules")
    await wait_for_status(alice, running["jobId"], "RUNNING")
    for document, variables in ((HOLD, {}), (RELEASE, {}), (UPDATE, {"priority": 3})):
        payload = await mutate(alice, document, id=running["jobId"], **variables)
        assert payload["job"] is None
        [error] = payload["userErrors"]
        assert error["code"] == "CONFLICT", error
        assert error["message"].startswith(f"job '{running['jobId']}' is RUNNING: only a waiting")

    queued = await create_job(alice, command=QUICK, resourcePoolId="rules")
    await wait_until(alice, queued["jobId"], reason_code("WAITING_FOR_SLOT"))
    for document, variables in ((HOLD, {}), (RELEASE, {}), (UPDATE, {"priority": 3})):
        payload = await mutate(bob, document, id=queued["jobId"], **variables)
        assert payload["job"] is None
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]  # no existence leak
    assert (await get(alice, queued["jobId"]))["held"] is False

    by_admin = await steered(admin, HOLD, id=queued["jobId"])  # an admin may steer anyone's
    assert by_admin["held"] is True
    await steered(admin, RELEASE, id=queued["jobId"])

    refused = await audit_entries(env.admin, jobId=running["jobId"], outcome="refused")
    assert [(e["action"], e["actor"]) for e in refused] == [
        ("job.hold", "alice"), ("job.release", "alice"), ("job.update", "alice"),
    ]
    trail = await audit_entries(env.admin, jobId=queued["jobId"])
    assert [(e["action"], e["actor"], e["outcome"]) for e in trail] == [
        ("job.create", "alice", "allowed"),
        ("job.hold", "bob", "refused"),
        ("job.release", "bob", "refused"),
        ("job.update", "bob", "refused"),
        ("job.hold", "root", "allowed"),
        ("job.release", "root", "allowed"),
    ]
    (tmp_path / "running").touch()
    await wait_for_status(alice, queued["jobId"], "SUCCEEDED")
