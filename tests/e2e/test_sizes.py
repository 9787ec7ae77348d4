"""Sizes in bytes, each a setting: job specs (all of it and per field), log answers
(with a first line saying what was left out and how to read it all), and what a client
sent echoed back in errors and log lines. And the log itself: an expected client error
is one line, without a traceback. One server with small limits, so they are quick to
reach."""

from __future__ import annotations

import httpx
import pytest

from tests.support.jobs import PY, create_job, logs, wait_for_status
from tests.support.server import GraphQLClient, GraphQLErrors

LIMITS = {
    "JOBGRAPH_MAX_JOB_SPEC_BYTES": "8192",
    "JOBGRAPH_MAX_COMMAND_ARG_BYTES": "2048",
    "JOBGRAPH_MAX_JOB_ENVS": "8",
    "JOBGRAPH_MAX_ENV_BYTES": "1024",
    "JOBGRAPH_MAX_JOB_LABELS": "4",
    "JOBGRAPH_MAX_LOG_ANSWER_BYTES": "4096",
    "JOBGRAPH_MAX_ECHO_BYTES": "256",
}

CREATE = """
mutation Create($input: CreateJobInput!) {
  createJob(input: $input) { job { jobId } userErrors { field message code } }
}
"""


@pytest.fixture(scope="module")
async def small(server_factory):
    server = await server_factory(**LIMITS)
    token = server.token("alice")
    server.start()
    client = GraphQLClient(server.url, token)
    rest = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield server, client, rest
    await client.close()
    await rest.aclose()


def _ok(**changes) -> dict:
    return {"name": "sized", "command": ["true"], **changes}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"command": ["echo", "x" * 2049]}, "command", "command argument 1 is 2049 bytes; at most 2048"),
        # Bytes, not characters: 700 CJK characters are 2,100 bytes.
        ({"command": ["echo", "训" * 700]}, "command", "is 2100 bytes"),
        ({"envs": [{"name": f"E{i}", "value": ""} for i in range(9)]}, "envs", "9 environment variables; at most 8"),
        ({"envs": [{"name": "BIG", "value": "v" * 1100}]}, "envs", "'BIG' is 1103 bytes; at most 1024"),
        ({"labels": {f"k{i}": "v" for i in range(5)}}, "labels", "5 labels; at most 4"),
        ({"command": ["echo", *["y" * 2000] * 5]}, None, "at most 8192 are allowed"),
    ],
)
async def test_job_specs_are_bounded_in_bytes(small, changes, field, words):
    _, client, rest = small
    payload = (await client.execute(CREATE, {"input": _ok(**changes)}))["createJob"]
    assert payload["job"] is None
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (field, "INVALID_ARGUMENT")
    assert words in error["message"], error
    # The REST facade runs the same rules: 422 in its envelope.
    body = {"jobName": "sized", "image": "img:1", **{k: v for k, v in changes.items() if k != "envs"}}
    if "envs" in changes or "labels" in changes:
        return  # the flat REST shape spells these differently; the core rule is the same
    answer = await rest.post("/api/jobs/create", json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["message"]


async def test_a_spec_at_the_limits_is_accepted(small):
    _, client, _ = small
    job = await create_job(
        client, name="at the limits", command=[PY, "-c", "pass", "z" * 1500],
        envs=[{"name": f"E{i}", "value": "v" * 500} for i in range(8)],
        labels={f"k{i}": "v" for i in range(4)},
    )
    done = await wait_for_status(client, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done


async def test_a_log_answer_is_bounded_and_says_what_it_left_out(small):
    _, client, rest = small
    # 100 lines of 100 bytes (with the newline) = 10,000 bytes; the answer holds 4,096.
    script = "for i in range(100): print(f'{i:04d}' + 'x' * 95)"
    job = await create_job(client, command=[PY, "-c", script])
    assert (await wait_for_status(client, job["jobId"], "SUCCEEDED", "FAILED"))["status"] == "SUCCEEDED"
    pod = f"{job['jobId']}-0"

    text = await logs(client, job["jobId"], pod)
    notice, *lines = text.splitlines()
    assert len(lines) == 40 and lines[-1].startswith("0099") and lines[0].startswith("0060")
    assert sum(len(line) + 1 for line in lines) <= 4096
    assert notice.startswith("[jobgraph: 6000 bytes of earlier log left out")
    assert "JOBGRAPH_MAX_LOG_ANSWER_BYTES" in notice and "tailLines" in notice and "follow=true" in notice

    # Asked for less than the bound: no notice.
    assert (await logs(client, job["jobId"], pod, tail=3)).splitlines()[0].startswith("0097")

    answer = await rest.get(f"/api/jobs/{job['jobId']}/pods/{pod}/logs")
    rest_text = answer.json()["data"]["logs"]
    assert rest_text == text


async def test_echoed_input_is_clipped_in_errors_and_log_lines(small):
    server, client, rest = small
    long_id = "j-" + "q" * 200_000
    with pytest.raises(GraphQLErrors) as caught:
        await client.execute("query($id: ID!) { job(id: $id) { jobId } }", {"id": long_id})
    message = caught.value.errors[0]["message"]
    assert len(message.encode()) < 400, len(message)
    assert "bytes left out" in message and message.endswith("not found")
    assert caught.value.code == "NOT_FOUND"

    answer = await rest.get(f"/api/jobs/{'j-' + 'r' * 6000}")
    assert answer.status_code == 404
    assert len(answer.json()["message"].encode()) < 400

    # A literal in the document: graphql-core's own messages are clipped too.
    response = await client.raw('{ job(id: %s) { jobId } }' % ("9" * 50_000))
    [error] = response.json()["errors"]
    assert len(error["message"].encode()) < 400, error["message"][:500]

    line = server.wait_for_output("graphql.refused", timeout=10)
    assert len(line.encode()) < 2000, line[:500]
    assert "qqqq" in line and "bytes left out" in line


async def test_client_errors_are_one_line_without_a_traceback(small):
    server, client, rest = small
    before = len(server.output)
    with pytest.raises(GraphQLErrors):
        await client.execute('{ job(id: "j-nothere") { jobId } }')
    with pytest.raises(GraphQLErrors):
        await client.execute("{ job(id: 1) { nope } }")
    stopped = await client.execute('mutation { stopJob(input: {jobId: "j-nothere"}) { userErrors { code } } }')
    assert stopped["stopJob"]["userErrors"] == [{"code": "NOT_FOUND"}]
    assert (await rest.get("/api/jobs/j-nothere")).status_code == 404
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        assert (await anonymous.post("/graphql", json={"query": "{ viewer { user } }"})).status_code == 401
    # The last one marks the end of what this test caused in the output.
    with pytest.raises(GraphQLErrors):
        await client.execute('{ job(id: "j-lastone") { jobId } }')
    server.wait_for_output("j-lastone", timeout=10)
    output = "".join(server.output[before:])
    assert "Traceback" not in output, output
    refused = [line for line in server.output[before:] if "graphql.refused" in line]
    assert any("code=NOT_FOUND" in line and "j-nothere" in line for line in refused), refused
    assert any("code=GRAPHQL_VALIDATION_FAILED" in line for line in refused), "\n".join(server.output[before:])
