"""Request bodies are bounded in bytes (JOBGRAPH_MAX_REQUEST_BODY_BYTES, 1 MiB by
default): over it, 413 with a message, whether the size is announced or streamed."""

from __future__ import annotations

import json

import httpx
import pytest

OVER = 1_048_576 + 1


@pytest.fixture(scope="module")
async def http(running):
    headers = {"Authorization": f"Bearer {running.alice_token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=running.server.url, headers=headers, timeout=60) as client:
        yield client


def big_graphql_body() -> bytes:
    name = "x" * OVER
    return json.dumps({"query": "{ viewer { user } }", "variables": {"pad": name}}).encode()


def big_rest_body() -> bytes:
    return json.dumps({"jobName": "x" * OVER, "image": "i", "command": ["true"]}).encode()


async def streamed(body: bytes):
    """Chunked transfer: no Content-Length to judge by."""
    for start in range(0, len(body), 65_536):
        yield body[start:start + 65_536]


@pytest.mark.parametrize("chunked", [False, True])
async def test_graphql_body_over_the_limit(http, chunked):
    body = big_graphql_body()
    response = await http.post("/graphql", content=streamed(body) if chunked else body)
    assert response.status_code == 413, response.text[:300]
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "larger than 1048576 bytes" in error["message"]


@pytest.mark.parametrize("path", ["/api/jobs/create", "/api/jobs"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_rest_body_over_the_limit(http, path, chunked):
    body = big_rest_body()
    response = await http.post(path, content=streamed(body) if chunked else body)
    assert response.status_code == 413, response.text[:300]
    answer = response.json()
    assert answer["success"] is False and answer["code"] == "PAYLOAD_TOO_LARGE"
    assert "JOBGRAPH_MAX_REQUEST_BODY_BYTES" in answer["message"]


async def test_a_body_under_the_limit_is_served(http):
    response = await http.post("/graphql", json={"query": "{ viewer { user } }", "variables": {"pad": "x" * 500_000}})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["data"]["viewer"]["user"] == "alice"
