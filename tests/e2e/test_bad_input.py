"""Client mistakes get a message that says what to fix; nothing is half-created."""

from __future__ import annotations

import pytest

from tests.support.jobs import create_errors
from tests.support.server import GraphQLErrors

OK = {"name": "ok", "command": ["true"]}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": ""}, "name", "empty"),
        ({"name": "   "}, "name", "empty"),
        ({"name": "x" * 129}, "name", "128"),
        ({"command": []}, "command", "non-empty"),
        ({"command": [""]}, "command", "non-empty"),
        ({"resources": {"cpus": -1}}, "resources.cpus", "more than 0"),
        ({"resources": {"memory": 1e9}}, "resources.memory", "at most"),
        ({"resources": {"gpu": -2}}, "resources.gpu", "0 or more"),
        ({"replicas": 0}, "replicas", "between 1"),
        ({"replicas": 10_000}, "replicas", "between 1"),
        ({"resourcePoolId": "nope"}, "resourcePoolId", "unknown resource pool"),
        ({"queue": "nope"}, "queue", "has no queue"),
        ({"envs": [{"name": "1BAD", "value": "x"}]}, "envs", "not valid"),
        ({"labels": {"bad key!": "x"}}, "labels", "not valid"),
        ({"maxRetries": -1}, "maxRetries", "between 0"),
        ({"timeoutSeconds": 0}, "timeoutSeconds", "between 1"),
        ({"priority": 5000}, "priority", "between"),
    ],
)
async def test_invalid_job_specs_are_user_errors(alice, change, field, words):
    before = (await alice.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"]
    [error] = await create_errors(alice, **{**OK, **change})
    assert error["field"] == field
    assert error["code"] == "INVALID_ARGUMENT"
    assert words in error["message"]
    after = (await alice.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"]
    assert after == before  # nothing was created


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("{ jobs(first: 0) { totalCount } }", "between 1 and 100"),
        ("{ jobs(first: 101) { totalCount } }", "between 1 and 100"),
        ('{ jobs(after: "not-a-cursor") { totalCount } }', "cursor is not valid"),
        ("{ jobs(offset: -1) { totalCount } }", "offset"),
    ],
)
async def test_bad_pages_are_errors_with_a_code(alice, query, words):
    with pytest.raises(GraphQLErrors) as caught:
        await alice.execute(query)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert words in str(caught.value)


async def test_malformed_graphql_is_a_validation_error(alice):
    response = await alice.raw("{ jobs { nope } }")
    body = response.json()
    assert "Cannot query field 'nope'" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    response = await alice.raw("{ jobs { ")
    error = response.json()["errors"][0]
    assert "Syntax Error" in error["message"] and error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_non_json_body_is_400(alice):
    response = await alice.http.post(
        "/graphql", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_oversized_queries_are_refused(alice):
    aliased = "query { " + " ".join(f"a{i}: jobs {{ totalCount }}" for i in range(31)) + " }"
    body = (await alice.raw(aliased)).json()
    assert "aliases" in body["errors"][0]["message"].lower()
    huge = "{ jobs { " + "totalCount " * 5000 + "} }"
    body = (await alice.raw(huge)).json()
    assert "token" in body["errors"][0]["message"].lower()
    normal = "{ jobs { edges { cursor node { jobId pods { name } } } pageInfo { hasNextPage } } }"
    assert "errors" not in (await alice.raw(normal)).json()


async def test_unknown_job_is_not_found(alice):
    with pytest.raises(GraphQLErrors) as caught:
        await alice.execute("{ job(id: \"j-doesnotx\") { jobId } }")
    assert caught.value.code == "NOT_FOUND"
    assert "j-doesnotx" in str(caught.value)
