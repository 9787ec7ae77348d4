"""GraphQL documents and waits shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import sys

from tests.support.server import GraphQLClient

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


async def wait_for_status(
    client: GraphQLClient, job_id: str, *statuses: str, timeout: float = 30.0
) -> dict:
    """Until the job reaches one of `statuses` (subscriptions arrive with the live issue;
    until then a short poll on the database-backed read, which costs no runtime call)."""
    async with asyncio.timeout(timeout):
        while True:
            job = await get_job(client, job_id)
            if job["status"] in statuses:
                return job
            await asyncio.sleep(0.05)


async def logs(client: GraphQLClient, job_id: str, pod: str, **kwargs) -> str:
    data = await client.execute(LOGS, {"id": job_id, "pod": pod, **kwargs})
    return data["job"]["logs"]
