"""The legacy console's cross-origin calls in a real Chromium (issue 10): a page served by
a static server of its own (another port is another origin) logs in, lists jobs with
the token, reads a 4xx message, logs out and opens a terminal socket; a page of an
origin not in JOBGRAPH_CORS_ORIGINS can do none of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.jobs import PY, wait_for_status
from tests.support.server import GraphQLClient

PAGE = b"<!doctype html><meta charset=utf-8><title>console</title><p>console"


class StaticServer:
    """Serves one page for any path, as the console's own static server would."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)

    @property
    def origin(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(PAGE)}\r\n\r\n".encode() + PAGE
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture(scope="module")
async def statics() -> AsyncIterator[tuple[StaticServer, StaticServer]]:
    console, elsewhere = StaticServer(), StaticServer()
    await console.start()
    await elsewhere.start()
    yield console, elsewhere
    await console.stop()
    await elsewhere.stop()


# What the console does: log in, list with the token in both headers (a preflighted
# request), read a 404's message, log out. Any fetch the browser blocks rejects.
CONSOLE_CALLS = """
(async () => {
  const api = %(api)s;
  try {
    const login = await (await fetch(api + "/api/login/account", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({ak: "dora", sk: %(sk)s, type: "account"})})).json();
    const headers = {"Authorization": "Bearer " + login.token, "X-Auth-Token": login.token,
                     "Content-Type": "application/json"};
    const list = await (await fetch(api + "/api/jobs", {method: "POST", headers, body: "{}"})).json();
    const missing = await fetch(api + "/api/jobs/j-00000000", {headers});
    const message = (await missing.json()).message;
    const out = await fetch(api + "/api/login/outLogin", {method: "POST", headers});
    return {status: login.status, authority: login.currentAuthority, listed: list.success,
            total: list.data.totalCount, missing: missing.status, message, out: out.status};
  } catch (error) {
    return {error: String(error)};
  }
})()
"""

# Open the terminal socket as the console does; resolve with "open" or the close code.
OPEN_SOCKET = """
new Promise(resolve => {
  const ws = new WebSocket(%(url)s);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { resolve("open"); ws.close(); };
  ws.onclose = event => resolve("closed " + event.code);
})
"""


async def test_a_page_of_the_listed_origin_works_and_another_cannot(
    context, server_factory, statics, tmp_path
):
    console, elsewhere = statics
    server = await server_factory(JOBGRAPH_CORS_ORIGINS=console.origin)
    token = server.token("dora")
    server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            created = await http.post("/api/jobs/create", json={
                "jobName": "origin", "image": "registry.example/train:1",
                "command": [PY, "-c", "import time; time.sleep(600)"],
                "envs": [{"name": "HOME", "value": str(tmp_path)}],
            })
            job_id = created.json()["data"]["jobId"]
            calls = CONSOLE_CALLS % {"api": json.dumps(server.url), "sk": json.dumps(token)}

            page = await context.new_page()
            try:
                await page.goto(console.origin + "/user/login")
                await page.wait_for_function("document.readyState === 'complete'")
                result = await page.evaluate(calls)
                assert result == {
                    "status": "ok", "authority": "user", "listed": True, "total": 1,
                    "missing": 404, "message": result.get("message"), "out": 200,
                }, result
                assert "j-00000000" in result["message"]

                await page.goto(elsewhere.origin + "/user/login")
                await page.wait_for_function("document.readyState === 'complete'")
                blocked = await page.evaluate(calls)
                assert blocked == {"error": "TypeError: Failed to fetch"}, blocked

                # The terminal socket: the console's page may open it, the other may not.
                graphql = GraphQLClient(server.url, token)
                try:
                    await wait_for_status(graphql, job_id, "RUNNING")
                finally:
                    await graphql.close()

                async def terminal_url() -> str:
                    answer = await http.get(f"/api/jobs/{job_id}/pods/{job_id}-0/webterminal")
                    return answer.json()["data"]["webTerminalUrl"]

                refused = await page.evaluate(OPEN_SOCKET % {"url": json.dumps(await terminal_url())})
                assert refused == "closed 1006", refused
                await page.goto(console.origin + "/terminal")
                await page.wait_for_function("document.readyState === 'complete'")
                opened = await page.evaluate(OPEN_SOCKET % {"url": json.dumps(await terminal_url())})
                assert opened == "open", opened
            finally:
                await page.close()
            await http.post(f"/api/jobs/{job_id}/stop")
    finally:
        server.stop()
