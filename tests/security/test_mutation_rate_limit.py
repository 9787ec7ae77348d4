"""Every mutation of a request counts against the rate limit, not just the request
(issue 9, point 5): aliases cannot buy twenty creates for the price of one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.server import GraphQLClient

PY = "true"


def creates(count: int, prefix: str) -> str:
    fields = " ".join(
        f'{prefix}{i}: createJob(input: {{name: "{prefix}{i}", command: ["{PY}"]}}) '
        "{ job { jobId } userErrors { code } }"
        for i in range(count)
    )
    return f"mutation {{ {fields} }}"


@pytest.fixture(scope="module")
async def limited(server_factory) -> AsyncIterator[tuple[GraphQLClient, GraphQLClient]]:
    # A burst of 30 that practically never refills during the test.
    server = await server_factory(
        JOBGRAPH_RATE_LIMIT_PER_MINUTE="0.01", JOBGRAPH_RATE_LIMIT_BURST="30"
    )
    user, admin = server.token("greedy"), server.token("root", admin=True)
    server.start()
    clients = GraphQLClient(server.url, user), GraphQLClient(server.url, admin)
    yield clients
    for client in clients:
        await client.close()


async def count_jobs(admin: GraphQLClient) -> int:
    data = await admin.execute('{ jobs(filter: {owner: "greedy"}) { totalCount } }')
    return data["jobs"]["totalCount"]


async def test_each_mutation_of_a_request_is_charged(limited):
    user, admin = limited
    body = (await user.raw(creates(25, "a"))).json()
    assert "errors" not in body, body
    assert all(v["job"] for v in body["data"].values())
    # 25 of 30 units spent; this request takes one more, its 10 mutations need 9.
    body = (await user.raw(creates(10, "b"))).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "9 more in this request" in body["errors"][0]["message"]
    assert await count_jobs(admin) == 25  # none of the refused ten was created
    # A single mutation still fits what is left.
    body = (await user.raw(creates(1, "c"))).json()
    assert "errors" not in body, body
