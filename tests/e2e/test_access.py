"""Every operation needs a principal; users see their own jobs, admins all."""

from __future__ import annotations

import re

import httpx

from tests.support.jobs import DELETE_JOB, GET_JOB, PY, STOP_JOB, create_job
from tests.support.server import GraphQLErrors


async def test_graphql_without_or_with_a_bad_token_is_refused(running):
    cases = [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Bearer jg_not-a-real-token"}, "unknown API token"),
        ({"Authorization": "Bearer not-a-token-at-all"}, "neither an API token nor a JWT"),
        ({"Authorization": "Bearer a.b.c"}, "accepts no OIDC tokens"),
        ({"Authorization": "Basic abc"}, "must be 'Bearer <token>'"),
    ]
    for headers, why in cases:
        async with httpx.AsyncClient(base_url=running.server.url) as http:
            response = await http.post("/graphql", json={"query": "{ jobs { totalCount } }"}, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert why in body["errors"][0]["message"]


async def test_graphiql_page_is_served(running):
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_another_users_job_is_not_found(alice, bob, admin):
    job = await create_job(alice, command=[PY, "-c", "pass"])
    try:
        await bob.execute(GET_JOB, {"id": job["jobId"]})
        raise AssertionError("bob saw alice's job")
    except GraphQLErrors as errors:
        assert errors.code == "NOT_FOUND"
    for mutation, key in ((STOP_JOB, "stopJob"), (DELETE_JOB, "deleteJob")):
        payload = (await bob.execute(mutation, {"id": job["jobId"]}))[key]
        assert payload["userErrors"][0]["code"] == "NOT_FOUND"
    seen_by_bob = await bob.execute("{ jobs(first: 100) { nodes { jobId owner } } }")
    assert all(n["owner"] == "bob" for n in seen_by_bob["jobs"]["nodes"])
    seen_by_admin = await admin.execute(GET_JOB, {"id": job["jobId"]})
    assert seen_by_admin["job"]["owner"] == "alice"


async def test_delete_removes_the_job(alice):
    job = await create_job(alice, command=["sleep", "600"])
    payload = (await alice.execute(DELETE_JOB, {"id": job["jobId"]}))["deleteJob"]
    assert payload == {"deletedJobId": job["jobId"], "userErrors": []}
    try:
        await alice.execute(GET_JOB, {"id": job["jobId"]})
        raise AssertionError("deleted job still readable")
    except GraphQLErrors as errors:
        assert errors.code == "NOT_FOUND"
    listed = await alice.execute(
        "query($k: String) { jobs(filter: {keyword: $k}) { totalCount } }", {"k": job["jobId"]}
    )
    assert listed["jobs"]["totalCount"] == 0


async def test_resource_pools_are_listed(alice):
    data = await alice.execute("{ resourcePools { id runtime queues maxConcurrentJobs } }")
    assert data["resourcePools"][0] == {
        "id": "local", "runtime": "local", "queues": ["default", "high"], "maxConcurrentJobs": 4
    }


async def test_graphiql_needs_no_cdn(running):
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        page = (await http.get("/graphql", headers={"Accept": "text/html"})).text
        assert "unpkg.com" not in page and "cdn" not in page.lower()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert len(assets) >= 5
        for asset in assets:
            response = await http.get(asset)
            assert response.status_code == 200 and len(response.content) > 500, asset


async def test_metrics_are_for_administrators(running, alice):
    await alice.execute("{ jobs { totalCount } }")
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        unknown = await http.get(
            "/api/jobs/j-nosuchjob", headers={"Authorization": f"Bearer {running.alice_token}"}
        )
        assert unknown.status_code == 404
        denied = await http.get("/metrics", headers={"Authorization": f"Bearer {running.alice_token}"})
        assert denied.status_code == 403
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {running.admin_token}"})).text
    assert "jobgraph_http_requests_total{" in text and "route=\"/graphql\"" in text, text
    # Labelled by the route's template (prefix included), never by the id asked for.
    assert 'route="/api/jobs/{jobId}",status="404"' in text, text
    assert "j-nosuchjob" not in text
    assert 'jobgraph_jobs{status="SUCCEEDED"}' in text
    assert "jobgraph_broker_subscribers" in text
