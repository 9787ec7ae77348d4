"""Cross-origin calls (issue 10, point 2): the console is served by its own static server,
so the browser sends CORS preflights and Origin headers. Over HTTP against running
servers: one listing the console's origin in JOBGRAPH_CORS_ORIGINS, one with the default
(same origin only)."""

from __future__ import annotations

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.live.terminal import read_until, resize, stdin
from tests.rest.conftest import CONSOLE_ORIGIN
from tests.support.jobs import PY

ELSEWHERE = "http://evil.example"
ASKED_HEADERS = "authorization,x-auth-token,content-type"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ASKED_HEADERS,
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize(("path", "method"), [
    ("/api/jobs", "POST"), ("/api/jobs/j-00000000", "DELETE"), ("/api/currentUser", "GET"),
    ("/api/login/account", "POST"), ("/graphql", "POST"),
])
async def test_preflights_from_the_listed_origin_are_answered(console, path, method):
    async with httpx.AsyncClient(base_url=console.server.url, timeout=30) as http:
        allowed = await http.options(path, headers=preflight(CONSOLE_ORIGIN, method))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        assert method in allowed.headers["access-control-allow-methods"]
        granted = {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
        assert set(ASKED_HEADERS.split(",")) <= granted
        assert "access-control-allow-credentials" not in allowed.headers  # bearer tokens, no cookies

        # An origin not listed gets no CORS header at all: its preflight is answered as
        # without CORS (405: no route takes OPTIONS), so the browser sends nothing more.
        refused = await http.options(path, headers=preflight(ELSEWHERE, method))
        assert refused.status_code == 405 and not cors_headers(refused)


async def test_cross_origin_requests_carry_cors_headers_only_for_the_listed_origin(console):
    token = console.carol_token
    async with httpx.AsyncClient(base_url=console.server.url, timeout=30) as http:
        # The console's own calls: login, then the list with its token, then a 4xx whose
        # message it must be able to read.
        login = await http.post("/api/login/account", headers={"Origin": CONSOLE_ORIGIN},
                                json={"ak": "carol", "sk": token, "type": "account"})
        assert login.status_code == 200 and login.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        session = login.json()["token"]
        headers = {"Origin": CONSOLE_ORIGIN, "Authorization": f"Bearer {session}", "X-Auth-Token": session}
        jobs = await http.post("/api/jobs", headers=headers, json={})
        assert jobs.status_code == 200 and jobs.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        missing = await http.get("/api/jobs/j-00000000", headers=headers)
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        assert "retry-after" in missing.headers["access-control-expose-headers"].lower()
        graphql = await http.post("/graphql", headers=headers, json={"query": "{ viewer { user } }"})
        assert graphql.status_code == 200 and graphql.headers["access-control-allow-origin"] == CONSOLE_ORIGIN

        # Another origin: the server answers (CORS is the browser's to enforce), but with
        # no CORS header, so no browser lets that page read it.
        other = {**headers, "Origin": ELSEWHERE}
        for response in (
            await http.post("/api/jobs", headers=other, json={}),
            await http.post("/graphql", headers=other, json={"query": "{ viewer { user } }"}),
        ):
            assert response.status_code == 200 and not cors_headers(response)
        # Paths outside /api and /graphql get none, even for the listed origin.
        health = await http.get("/healthz", headers={"Origin": CONSOLE_ORIGIN})
        assert not cors_headers(health)


async def test_same_origin_only_by_default(running):
    async with httpx.AsyncClient(base_url=running.server.url, timeout=30) as http:
        answer = await http.options("/api/jobs", headers=preflight(CONSOLE_ORIGIN))
        assert answer.status_code == 405 and not cors_headers(answer)
        jobs = await http.post("/api/jobs", json={}, headers={
            "Origin": CONSOLE_ORIGIN, "Authorization": f"Bearer {running.alice_token}"})
        assert jobs.status_code == 200 and not cors_headers(jobs)


async def test_the_terminal_handshake_checks_the_origin(console, carol, tmp_path):
    job_id = await carol.create({
        "jobName": "cors terminal", "image": "registry.example/train:1",
        "command": [PY, "-c", "import time; time.sleep(600)"],
        "envs": [{"name": "HOME", "value": str(tmp_path)}],
    })
    await carol.wait_for_status(job_id, "Running")
    pod = f"{job_id}-0"

    async def url() -> str:
        answer = await carol.call("GET", f"/api/jobs/{job_id}/pods/{pod}/webterminal")
        return answer["data"]["webTerminalUrl"]

    # A page of another origin may not open it: HTTP 403, and the URL stays unspent.
    refused_url = await url()
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(refused_url, origin=ELSEWHERE):
            pass
    assert refused.value.response.status_code == 403
    # The console's origin, and the server's own, may.
    for origin, address in ((CONSOLE_ORIGIN, refused_url), (console.server.url, await url())):
        async with websockets.connect(address, origin=origin) as ws:
            await ws.send(resize(24, 80))
            await ws.send(stdin("echo cors-$((40+2))\n"))
            await read_until(ws, r"cors-42")
    await carol.call("POST", f"/api/jobs/{job_id}/stop")


async def test_the_terminal_handshake_is_same_origin_only_by_default(running, rest, tmp_path):
    job_id = await rest.create({
        "jobName": "origin terminal", "image": "registry.example/train:1",
        "command": [PY, "-c", "import time; time.sleep(600)"],
        "envs": [{"name": "HOME", "value": str(tmp_path)}],
    })
    await rest.wait_for_status(job_id, "Running")
    path = f"/api/jobs/{job_id}/pods/{job_id}-0/webterminal"
    address = (await rest.call("GET", path))["data"]["webTerminalUrl"]
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(address, origin=CONSOLE_ORIGIN):
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(address, origin=running.server.url) as ws:
        await ws.send(stdin("echo same-$((40+2))\n"))
        await read_until(ws, r"same-42")
    await rest.call("POST", f"/api/jobs/{job_id}/stop")
