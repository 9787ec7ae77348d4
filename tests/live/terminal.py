"""Helpers for the terminal tests (live and browser): a running job with a shell to open,
terminal URLs through the REST facade, reading a terminal socket, the audit trail."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import ClientConnection

from tests.support.jobs import create_job, wait_for_status
from tests.support.server import GraphQLClient, Server

KEEPALIVE = b"\x00\x00\x00"


def line(text: str) -> str:
    """A regex for one whole line of terminal output (it may follow escape codes and a
    carriage return, as the shell's prompt handling leaves them)."""
    return r"[\r\n]" + re.escape(text) + r"\r\n"


def stdin(text: str) -> bytes:
    return b"\x00" + text.encode()


def resize(rows: int, cols: int) -> bytes:
    return b"\x04" + f'{{"Height": {rows}, "Width": {cols}}}'.encode()


@dataclass(frozen=True)
class ShellJob:
    job_id: str
    pod: str


async def start_shell_job(client: GraphQLClient, home: str) -> ShellJob:
    """A job that runs long enough to open shells in. Its HOME is an empty directory so
    the machine's ~/.bashrc (which may do anything, slowly) stays out of the shell."""
    job = await create_job(
        client, name="terminal", command=["sleep", "600"],
        envs=[{"name": "HOME", "value": home}],
    )
    running = await wait_for_status(client, job["jobId"], "RUNNING", "FAILED")
    assert running["status"] == "RUNNING", running
    return ShellJob(job["jobId"], running["pods"][0]["name"])


async def terminal_url(server: Server, token: str, job: ShellJob) -> str:
    """What the console does: ask the REST facade for the pod's terminal URL."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        response = await http.get(f"/api/jobs/{job.job_id}/pods/{job.pod}/webterminal")
    assert response.status_code == 200, response.text
    return response.json()["data"]["webTerminalUrl"]


async def read_until(ws: ClientConnection, *patterns: str, timeout: float = 20.0) -> str:
    """Terminal output until every regex has matched; each frame must be raw bytes."""
    seen = ""
    try:
        async with asyncio.timeout(timeout):
            while not all(re.search(p, seen, re.MULTILINE) for p in patterns):
                frame = await ws.recv()
                assert isinstance(frame, bytes), frame
                seen += frame.decode()
    except TimeoutError:
        raise AssertionError(f"no {patterns!r} in terminal output {seen!r}") from None
    return seen


AUDIT_LOG = """
query Audit($filter: AuditFilterInput) {
  auditLog(filter: $filter, first: 100) {
    nodes { at actor action outcome jobId detail clientAddr }
  }
}
"""


async def audit_entries(admin: GraphQLClient, **audit_filter: str) -> list[dict]:
    """The audit trail through the admin-only `auditLog` query, oldest first."""
    data = await admin.execute(AUDIT_LOG, {"filter": audit_filter})
    return list(reversed(data["auditLog"]["nodes"]))


async def wait_for_audit(
    admin: GraphQLClient, count: int = 1, timeout: float = 15.0, **audit_filter: str
) -> list[dict]:
    """Until `count` entries match: the server writes a session's close entry just
    after the socket has closed, so the test may ask a moment earlier."""
    async with asyncio.timeout(timeout):
        while len(rows := await audit_entries(admin, **audit_filter)) < count:
            await asyncio.sleep(0.1)
    return rows
