"""GraphQL documents and waits shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import sys

from tests.support.server import GraphQLClient
from tests.support.subscriptions import gql_session, gql_subscribe

JOB_FIELDS = """
  jobId name status owner resourcePoolId queue image command replicas priority
  createdAt startedAt finishedAt reason exitCode config
  pods { name phase nodeName exitCode restartCount replicaIndex }
"""

CREATE_JOB = f"""
mutation Create($input: CreateJobInput!) {{
  createJob(input: $input) {{
    job {{ {JOB_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

GET_JOB = f"query Get($id: ID!) {{ job(id: $id) {{ {JOB_FIELDS} events {{ type reason message timestamp }} }} }}"

STOP_JOB = """
mutation Stop($id: ID!) { stopJob(input: {jobId: $id}) { job { jobId status } userErrors { field message code } } }
"""

DELETE_JOB = """
mutation Delete($id: ID!) { deleteJob(input: {jobId: $id}) { deletedJobId userErrors { field message code } } }
"""

LOGS = """
query Logs($id: ID!, $pod: String!, $tail: Int, $keyword: String) {
  job(id: $id) { logs(podName: $pod, tailLines: $tail, keyword: $keyword) }
}
"""

PY = sys.executable  # a command that exists on every machine running the tests


async def create_job(client: GraphQLClient, **spec) -> dict:
    spec.setdefault("name", "test job")
    data = await client.execute(CREATE_JOB, {"input": spec})
    payload = data["createJob"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["job"]


async def create_errors(client: GraphQLClient, **spec) -> list[dict]:
    data = await client.execute(CREATE_JOB, {"input": spec})
    assert data["createJob"]["job"] is None
    return data["createJob"]["userErrors"]


async def get_job(client: GraphQLClient, job_id: str) -> dict:
    return (await client.execute(GET_JOB, {"id": job_id}))["job"]


WATCH_JOB = f"""
subscription Watch($id: ID!) {{
  jobUpdated(jobId: $id) {{ {JOB_FIELDS} events {{ type reason message timestamp }} }}
}}
"""


async def wait_for_status(
    client: GraphQLClient, job_id: str, *statuses: str, timeout: float = 30.0
) -> dict:
    """The job as it was when it reached one of `statuses`, from the `jobUpdated`
    subscription (the job now, then every change): waiting on events, not polling."""
    seen = []
    async with asyncio.timeout(timeout), gql_session(client.url, client.token) as session:
        async for result in gql_subscribe(session, WATCH_JOB, {"id": job_id}):
            job = result["jobUpdated"]
            seen.append(job["status"])
            if job["status"] in statuses:
                return job
    raise AssertionError(f"job {job_id} ended as {seen[-1] if seen else '?'} ({seen}), not {statuses}")


async def logs(client: GraphQLClient, job_id: str, pod: str, **kwargs) -> str:
    data = await client.execute(LOGS, {"id": job_id, "pod": pod, **kwargs})
    return data["job"]["logs"]
