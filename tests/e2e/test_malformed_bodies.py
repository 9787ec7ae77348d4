"""Bodies that are not a request at all — not an object, not UTF-8, strings that are not
text, JSON nested thousands deep — answer 400 with a message (REST in its envelope),
never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

DEEP = 3_000  # past the JSON scanner's own recursion guard
SHALLOW_BUT_DEEP = 200  # parses, then would recurse in variable coercion or validation


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


GRAPHQL_CASES = [
    (b"null", "not null"),
    (b"123", "not a number"),
    (b'"str"', "not a string"),
    (b"true", "not a boolean"),
    (b'{"query": "{ viewer { user } }\xff"}', "not valid UTF-8"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b'{"query": "{ viewer { user } }", "variables": {"a": "\\ud800"}}', "unpaired surrogate"),
    (b'{"query": "{ viewer { user } }", "variables": {"a": ' + nested(DEEP) + b"}}", "nested more than"),
    (b'{"query": "{ viewer { user } }", "variables": {"a": ' + nested(SHALLOW_BUT_DEEP) + b"}}", "nested more than"),
]


@pytest.fixture(scope="module")
async def http(running):
    headers = {"Authorization": f"Bearer {running.alice_token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=running.server.url, headers=headers, timeout=60) as client:
        yield client


@pytest.mark.parametrize(("body", "words"), GRAPHQL_CASES)
async def test_graphql_refuses_malformed_bodies(http, body, words):
    response = await http.post("/graphql", content=body)
    assert response.status_code == 400, response.text
    assert words in response.text


async def test_deeply_nested_variables_of_a_real_operation(http):
    """Deep JSON in the variables of a mutation that takes an input object."""
    query = b'"mutation($i: CreateJobInput!) { createJob(input: $i) { job { jobId } } }"'
    body = b'{"query": ' + query + b', "variables": {"i": {"name": ' + nested(DEEP) + b"}}}"
    response = await http.post("/graphql", content=body)
    assert response.status_code == 400, response.text
    assert "nested more than" in response.text


REST_CASES = [
    ("/api/jobs/create", b'{"jobName": "\xff", "image": "i", "command": ["true"]}', "not valid UTF-8"),
    ("/api/jobs/create", b'{"jobName": "\\udfff", "image": "i", "command": ["true"]}', "unpaired surrogate"),
    ("/api/jobs/create", b'{"jobName": ' + nested(DEEP) + b"}", "nested more than"),
    ("/api/jobs/create", b'{"taskParams": {"name": ' + nested(SHALLOW_BUT_DEEP) + b"}}", "nested more than"),
    ("/api/jobs/create", b'{"taskParams": "' + nested(DEEP) + b'"}', "taskParams is JSON nested more than"),
    ("/api/jobs", b'{"status": ' + nested(DEEP) + b"}", "nested more than"),
    ("/api/jobs", b"\xff", "not valid UTF-8"),
]


@pytest.mark.parametrize(("path", "body", "words"), REST_CASES)
async def test_rest_refuses_malformed_bodies_in_its_envelope(http, path, body, words):
    response = await http.post(path, content=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["success"] is False
    assert answer["code"] == "BAD_REQUEST"
    assert words in answer["message"], answer


async def test_a_body_of_too_many_values_is_refused_before_coercion(http):
    """37,000 environment variables fit in 1 MiB; coercing them took the event loop for
    seconds. Refused with the body's parse, before GraphQL coerces anything."""
    envs = [{"name": "A", "value": ""} for _ in range(37_000)]
    body = {
        "query": "mutation($i: CreateJobInput!) { createJob(input: $i) { job { jobId } } }",
        "variables": {"i": {"name": "many", "command": ["true"], "envs": envs}},
    }
    response = await http.post("/graphql", json=body)
    assert response.status_code == 400, response.text[:300]
    assert "more than 10000 JSON values" in response.text
    rest = await http.post("/api/jobs/create", json={"jobName": "many", "image": "i", "command": ["x"] * 20_000})
    assert rest.status_code == 400 and "more than 10000 JSON values" in rest.json()["message"]


@pytest.mark.parametrize("levels", [DEEP, SHALLOW_BUT_DEEP])
async def test_a_websocket_message_nested_too_deep_closes_as_invalid(running, levels):
    """graphql-transport-ws: such a message is not JSON this server takes (4400, as for
    any invalid message); the server goes on serving."""
    url = running.server.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"token": running.alice_token}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = "subscription($id: ID) { jobUpdated(jobId: $id) { jobId } }"
        deep = (
            '{"id": "1", "type": "subscribe", "payload": {"query": '
            f'{json.dumps(query)}, "variables": {{"x": {nested(levels).decode()}}}}}}}'
        )
        await ws.send(deep)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4400
    response = await httpx.AsyncClient(base_url=running.server.url).get("/healthz")
    assert response.status_code == 200
