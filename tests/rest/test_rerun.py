"""POST /api/jobs/{jobId}/rerun (issue 13): answers like create, runs the same
`rerunJob` as GraphQL, and refuses what it cannot do with a 4xx envelope."""

from __future__ import annotations

import sys

import pytest

PY = sys.executable
PRINT_B = [PY, "-c", "import os; print(os.environ.get('B'))"]


async def ended(rest, body: dict, *statuses: str) -> str:
    job_id = await rest.create({"jobName": "rerun me", "image": "img:1", **body})
    await rest.wait_for_status(job_id, *statuses)
    return job_id


async def total(rest) -> int:
    return (await rest.call("POST", "/api/jobs", json={"pageSize": 1}))["data"]["totalCount"]


async def test_rerun_answers_like_create_and_runs(rest):
    old = await ended(rest, {"command": PRINT_B, "envs": [{"name": "B", "value": "old"}]}, "Succeeded")
    answer = await rest.call("POST", f"/api/jobs/{old}/rerun", json={
        "priority": "high", "queue": "high", "envs": [{"name": "B", "value": "new"}],
    })
    assert answer["message"] == "训练任务创建成功"
    new = answer["data"]
    assert new["rerunOf"] == old and new["jobId"] != old
    assert new["jobName"] == new["name"] == "rerun me"
    assert new["jobStatus"] in {"PENDING", "QUEUED", "RUNNING", "SUCCEEDED"}
    done = await rest.wait_for_status(new["jobId"], "Succeeded")
    assert (done["jobStatus"], done["priority"], done["queue"]) == ("SUCCEEDED", 100, "high")
    log = await rest.call("GET", f"/api/jobs/{new['jobId']}/pods/{new['jobId']}-0/logs")
    assert log["data"]["logs"].strip() == "new"


async def test_rerun_without_a_body_is_the_same_job_again(rest):
    old = await ended(rest, {"command": [PY, "-c", "pass"]}, "Succeeded")
    new = (await rest.call("POST", f"/api/jobs/{old}/rerun"))["data"]
    assert new["rerunOf"] == old
    old_config = (await rest.call("GET", f"/api/jobs/{old}"))["data"]["config"]
    new_config = (await rest.call("GET", f"/api/jobs/{new['jobId']}"))["data"]["config"]
    assert new_config == old_config


async def test_rest_and_graphql_give_the_same_refusals(rest, rest_bob):
    old = await ended(rest, {"command": [PY, "-c", "pass"]}, "Succeeded")
    answer = await rest_bob.call("POST", f"/api/jobs/{old}/rerun", status=404)
    assert answer["code"] == "NOT_FOUND" and answer["field"] == "jobId"
    graphql = await rest_bob.operation("RestRerunJob", {"input": {"jobId": old}})
    assert graphql["data"]["rerunJob"]["userErrors"][0]["message"] == answer["message"]


async def test_a_job_still_running_is_409(rest):
    job_id = await rest.create({
        "jobName": "long", "image": "img:1", "command": [PY, "-c", "import time; time.sleep(600)"],
    })
    await rest.wait_for_status(job_id, "Running")
    answer = await rest.call("POST", f"/api/jobs/{job_id}/rerun", status=409)
    assert answer["code"] == "CONFLICT" and "is still RUNNING" in answer["message"]
    await rest.call("POST", f"/api/jobs/{job_id}/stop")


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"image": "other:2"}, 400, "BAD_REQUEST", "image cannot be changed"),
        ({"queue": "nope"}, 422, "INVALID_ARGUMENT", "has no queue 'nope'"),
        ({"priority": "whenever"}, 422, "INVALID_ARGUMENT", "priority 'whenever'"),
        ({"envs": [{"name": "", "value": "x"}]}, 422, "INVALID_ARGUMENT", "is not valid"),
        ({"envs": "B=1"}, 400, "GRAPHQL_VALIDATION_FAILED", "envs"),
    ],
)
async def test_bad_overrides(rest, body, status, code, words):
    old = await ended(rest, {"command": [PY, "-c", "pass"]}, "Succeeded")
    before = await total(rest)
    answer = await rest.call("POST", f"/api/jobs/{old}/rerun", status=status, json=body)
    assert answer["code"] == code and words in answer["message"], answer
    assert await total(rest) == before


async def test_an_idempotency_key_answers_the_same_rerun(rest):
    old = await ended(rest, {"command": [PY, "-c", "pass"]}, "Succeeded")
    headers = {"Idempotency-Key": f"again-{old}"}
    first = await rest.call("POST", f"/api/jobs/{old}/rerun", headers=headers)
    second = await rest.call("POST", f"/api/jobs/{old}/rerun", headers=headers)
    assert first["data"]["jobId"] == second["data"]["jobId"]
