"""A REST client of the facade with the GraphQL twin of each call, for comparing them;
and a reader of server-sent events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support.jobs import wait_for_status
from tests.support.server import GraphQLClient

OPERATIONS = (Path(__file__).resolve().parents[2] / "rest_compat" / "operations.graphql").read_text()


class Rest:
    """An httpx client on /api/jobs plus the GraphQL client of the same user."""

    def __init__(self, url: str, token: str | None, graphql: GraphQLClient) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=url, headers=headers, timeout=30)
        self.graphql = graphql

    async def call(self, method: str, path: str, *, status: int = 200, **kwargs) -> dict:
        response = await self.http.request(method, path, **kwargs)
        body = response.json()
        assert response.status_code == status, (response.status_code, body)
        assert body["success"] is (status == 200), body
        assert isinstance(body["message"], str) and "data" in body
        if status != 200:
            assert body["message"] and body["code"], body
        return body

    async def operation(self, name: str, variables: dict) -> dict:
        """The same named operation the route runs, posted to /graphql."""
        response = await self.graphql.http.post(
            "/graphql", json={"query": OPERATIONS, "operationName": name, "variables": variables}
        )
        return response.json()

    async def create(self, body: dict) -> str:
        created = await self.call("POST", "/api/jobs/create", json=body)
        assert created["message"] == "训练任务创建成功"
        return created["data"]["jobId"]

    async def wait_for_status(self, job_id: str, *statuses: str, timeout: float = 30) -> dict:
        """Wait on the `jobUpdated` subscription (REST has no push), then read the job
        through REST (a job awaited RUNNING may have moved on by then; a final one stays)."""
        await wait_for_status(self.graphql, job_id, *(s.upper() for s in statuses), timeout=timeout)
        return (await self.call("GET", f"/api/jobs/{job_id}"))["data"]

    async def close(self) -> None:
        await self.http.aclose()


# The legacy console's status words (issue 10), written out here rather than imported,
# so a change to the facade's table shows up as a failing test.
CONSOLE_WORDS = {
    "PENDING": "Pending", "QUEUED": "Pending", "RUNNING": "Running", "STOPPING": "Stopping",
    "SUCCEEDED": "Completed", "FAILED": "Failed", "STOPPED": "Stopped",
}


def legacy(value):
    """GraphQL's answer in the REST spelling: a job's status SUCCEEDED becomes status
    Completed plus jobStatus SUCCEEDED; pods' statuses (Kubernetes phases) stay."""
    if isinstance(value, list):
        return [legacy(v) for v in value]
    if isinstance(value, dict):
        out = {k: legacy(v) for k, v in value.items()}
        if out.get("status") in CONSOLE_WORDS:
            out["jobStatus"] = out["status"]
            out["status"] = CONSOLE_WORDS[out["status"]]
        return out
    return value


def is_terminal_url(url: str) -> bool:
    # The credential is a compact JWS: header.payload.signature, each base64url.
    return re.fullmatch(
        r"wss?://[^/]+/webterminal/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", url
    ) is not None


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream; `message` is the default event."""
    event = "message"
    async for raw in response.aiter_lines():
        if raw.startswith("event:"):
            event = raw.split(":", 1)[1].strip()
        elif raw.startswith("data:"):
            yield event, raw[5:].removeprefix(" ")
        elif not raw:
            event = "message"
