"""A small document whose fragments spread each other twice per level expands to 2^n
fields: it is refused before validation, over HTTP and over the subscription socket, and
the server keeps answering others meanwhile (issue 9, point 2)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError

from tests.support.subscriptions import gql_session, gql_subscribe

LEVELS = 40


def fanned_out(root: str, levels: int = LEVELS) -> str:
    fragments = [f"fragment F{i} on Job {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Job {{ jobId name status }}")
    return f"{root} " + " ".join(fragments)


QUERY = fanned_out('{ job(id: "j-whatever") { ...F0 } }')
SUBSCRIPTION = fanned_out('subscription { jobUpdated(jobId: "j-whatever") { ...F0 } }')


def assert_refused(error: dict) -> None:
    assert "expands to more than" in error["message"]


async def test_fanned_out_query_is_refused_and_the_server_stays_responsive(alice, running):
    assert len(QUERY) < 2_000
    # Several at once: were any of them walked per spread, the server would be frozen and
    # /healthz below would never answer (each request has a 30 s client timeout).
    hostile = [asyncio.create_task(alice.raw(QUERY)) for _ in range(4)]
    async with httpx.AsyncClient(base_url=running.server.url, timeout=30) as http:
        health = await http.get("/healthz")
    assert health.status_code == 200
    for response in await asyncio.gather(*hostile):
        body = response.json()
        assert body.get("data") is None
        assert_refused(body["errors"][0])
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_fanned_out_cycle_is_refused(alice):
    query = (
        '{ job(id: "j-whatever") { ...A } } '
        "fragment A on Job { ...B ...B } fragment B on Job { ...A ...A jobId }"
    )
    error = (await alice.raw(query)).json()["errors"][0]
    assert "spreads itself" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_fanned_out_subscription_is_refused(running):
    async with gql_session(running.server.url, running.alice_token) as session:
        with pytest.raises(TransportQueryError) as caught:
            async for _ in gql_subscribe(session, SUBSCRIPTION):
                pass
    assert_refused(caught.value.errors[0])
    assert caught.value.errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    async with httpx.AsyncClient(base_url=running.server.url, timeout=30) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_reasonable_fragments_still_run(alice):
    query = (
        "{ jobs(first: 3) { nodes { ...A } } } "
        "fragment A on Job { ...B ...B } fragment B on Job { ...C ...C } "
        "fragment C on Job { jobId status pods { name } }"
    )
    body = (await alice.raw(query)).json()
    assert "errors" not in body, body
