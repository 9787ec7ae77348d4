"""Listing: filters, keyset pages, totals, idempotency."""

from __future__ import annotations

import secrets

from tests.support.jobs import PY, create_job, wait_for_status

LIST = """
query List($filter: JobFilterInput, $first: Int!, $after: String, $offset: Int! = 0) {
  jobs(filter: $filter, first: $first, after: $after, offset: $offset) {
    totalCount
    edges { cursor node { jobId name status } }
    nodes { jobId }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def test_filters_pages_and_totals(alice):
    tag = secrets.token_hex(4)
    ids = []
    for i in range(5):
        job = await create_job(alice, name=f"sweep-{tag}-{i} 中文", command=[PY, "-c", "pass"], queue="high")
        ids.append(job["jobId"])
    for job_id in ids:
        await wait_for_status(alice, job_id, "SUCCEEDED")

    first = (await alice.execute(LIST, {"filter": {"keyword": f"sweep-{tag}"}, "first": 2}))["jobs"]
    assert first["totalCount"] == 5
    assert [n["jobId"] for n in first["nodes"]] == ids[::-1][:2]  # newest first
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]

    seen = [n["jobId"] for n in first["nodes"]]
    after = first["pageInfo"]["endCursor"]
    # A new job created meanwhile does not shift the following pages.
    await create_job(alice, name=f"sweep-{tag}-late", command=[PY, "-c", "pass"])
    while after:
        page = (await alice.execute(LIST, {"filter": {"keyword": f"sweep-{tag}-"}, "first": 2, "after": after}))["jobs"]
        seen += [n["jobId"] for n in page["nodes"] if n["jobId"] in ids]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == ids[::-1]

    by_offset = (await alice.execute(LIST, {"filter": {"keyword": f"sweep-{tag}-", "queue": "high"}, "first": 2, "offset": 2}))["jobs"]
    assert [n["jobId"] for n in by_offset["nodes"]] == ids[::-1][2:4]

    by_status = (await alice.execute(LIST, {"filter": {"keyword": tag, "status": ["SUCCEEDED"], "resourcePoolId": "local", "queue": "high", "owner": "alice"}, "first": 10}))["jobs"]
    assert by_status["totalCount"] == 5
    none = (await alice.execute(LIST, {"filter": {"keyword": tag, "status": "FAILED"}, "first": 10}))["jobs"]
    assert none["totalCount"] == 0 and none["nodes"] == []

    by_id = (await alice.execute(LIST, {"filter": {"keyword": ids[0].upper()}, "first": 10}))["jobs"]
    assert [n["jobId"] for n in by_id["nodes"]] == [ids[0]]
    by_unicode = (await alice.execute(LIST, {"filter": {"keyword": "中文"}, "first": 100}))["jobs"]
    assert set(ids) <= {n["jobId"] for n in by_unicode["nodes"]}


async def test_keyword_wildcards_are_literal(alice):
    job = await create_job(alice, name="100%_done", command=[PY, "-c", "pass"])
    hits = (await alice.execute(LIST, {"filter": {"keyword": "%_"}, "first": 100}))["jobs"]
    names = {e["node"]["jobId"]: e["node"]["name"] for e in hits["edges"]}
    assert job["jobId"] in names
    assert all("%_" in name for name in names.values())


async def test_idempotency_key_returns_the_same_job(alice, bob):
    key = "submit-" + secrets.token_hex(4)
    spec = {"name": "once", "command": [PY, "-c", "pass"], "idempotencyKey": key}
    first = await create_job(alice, **spec)
    again = await create_job(alice, **spec)
    assert again["jobId"] == first["jobId"]
    others = await create_job(bob, **spec)  # keys are per user
    assert others["jobId"] != first["jobId"]
    listed = (await alice.execute(LIST, {"filter": {"keyword": first["jobId"]}, "first": 5}))["jobs"]
    assert listed["totalCount"] == 1
