"""Client mistakes: a 4xx envelope whose message says what is wrong; never a 500, and
nothing half-created."""

from __future__ import annotations

import pytest

OK = {"jobName": "ok", "image": "img:1", "command": ["true"]}
UNIFIED = {"name": "u", "container": {"image": "img:1", "command": ["true"]}}
NATIVE = {"name": "n", "command": "true", "jobSpec": {"image": "img:1"}}


async def total(rest) -> int:
    return (await rest.call("POST", "/api/jobs", json={"pageSize": 1}))["data"]["totalCount"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"taskParams": "{oops"}, 400, "taskParams is not valid JSON"),
        ({"taskParams": 42}, 400, "taskParams must be an object"),
        ({"taskParams": {**UNIFIED, "container": "img"}}, 400, "container must be an object"),
        ({**OK, "image": None}, 422, "image is required"),
        ({**OK, "image": ""}, 422, "image is required"),
        ({"taskParams": {**UNIFIED, "container": {"command": ["true"]}}}, 422, "container.image is required"),
        ({"taskParams": {**NATIVE, "jobSpec": {}}}, 422, "jobSpec.image is required"),
        ({k: v for k, v in OK.items() if k != "command"}, 422, "command must be a non-empty list"),
        ({**OK, "command": []}, 422, "command must be a non-empty list"),
        ({**OK, "command": "  "}, 422, "command must be a non-empty list"),
        ({"taskParams": {**NATIVE, "command": ""}}, 422, "command must be a non-empty list"),
        ({**OK, "jobName": ""}, 422, "name must not be empty"),
        ({**OK, "command": 5}, 400, "command"),
        ({**OK, "replicas": "two"}, 400, "replicas: Int cannot represent"),
        ({**OK, "replicas": 0}, 422, "replicas must be between 1"),
        ({**OK, "resourcePoolId": "nope"}, 422, "unknown resource pool"),
        ({**OK, "queue": "nope"}, 422, "has no queue"),
        ({"taskParams": {**UNIFIED, "priority": "whenever"}}, 422, "priority 'whenever'"),
        ({"taskParams": {**UNIFIED, "container": {**UNIFIED["container"], "resources": {"cpus": -1}}}}, 422, "resources.cpus"),
    ],
)
async def test_bad_create_bodies(rest, body, status, words):
    before = await total(rest)
    kwargs = {"content": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    answer = await rest.call("POST", "/api/jobs/create", status=status, **kwargs)
    assert words in answer["message"], answer
    assert answer["code"] in {"BAD_REQUEST", "INVALID_ARGUMENT", "GRAPHQL_VALIDATION_FAILED"}
    assert await total(rest) == before  # nothing was created


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"pageSize": 0}, "between 1 and 100"),
        ({"pageSize": 10_000}, "between 1 and 100"),
        ({"pageSize": "many"}, "pageSize must be an integer"),
        ({"pageNumber": 0}, "pageNumber starts at 1"),
        ({"status": "Sleeping"}, "unknown status 'Sleeping'"),
        ({"status": 3}, "status must be"),
        ({"keyword": "k" * 500}, "keyword is longer"),
    ],
)
async def test_bad_list_arguments_are_400(rest, body, words):
    answer = await rest.call("POST", "/api/jobs", json=body, status=400)
    assert words in answer["message"], answer
    if "pageSize" in body and isinstance(body["pageSize"], int):
        assert answer["field"] == "pageSize"


async def test_malformed_list_body_is_400(rest):
    answer = await rest.call("POST", "/api/jobs", content=b"{", headers={"Content-Type": "application/json"}, status=400)
    assert "not valid JSON" in answer["message"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/api/jobs/j-unknown00", {}, 404, "not found"),
        ("/api/jobs/j-unknown00/events", {}, 404, "not found"),
        ("/api/jobs/j-unknown00/pods/p/logs", {}, 404, "not found"),
        ("/api/jobs/j-unknown00/pods/p/webterminal", {}, 404, "not found"),
        ("/api/jobs/{job}/pods/{job}-0/logs", {"tailLines": -1}, 400, "tailLines must be 0 or more"),
        ("/api/jobs/{job}/pods/{job}-0/logs", {"tailLines": "ten"}, 400, "tailLines"),
        ("/api/jobs/{job}/pods/{job}-0/logs", {"maxLines": -3}, 400, "maxLines"),
        ("/api/jobs/{job}/pods/{job}-0/logs", {"follow": "perhaps"}, 400, "follow"),
        ("/api/jobs/{job}/pods/{job}-7/logs", {}, 404, "not found in job"),
        ("/api/jobs/{job}/pods/..%2F..%2Fetc%2Fpasswd/logs", {}, 404, "Not Found"),
        ("/api/jobs/{job}/pods/%2E%2E/logs", {}, 404, ""),
        ("/api/jobs/{job}/events", {"startTime": "yesterday"}, 400, "startTime: 'yesterday' is not an ISO 8601 time"),
        ("/api/jobs/{job}/events", {"startTime": "2030-01-01T00:00:00Z", "endTime": "2020-01-01T00:00:00Z"}, 400, "startTime must not be after endTime"),
    ],
)
async def test_bad_reads(rest, finished_job, path, params, status, words):
    answer = await rest.call("GET", path.format(job=finished_job), params=params, status=status)
    assert words in answer["message"], answer


async def test_stop_and_delete_unknown_jobs_are_404(rest):
    for method, path in (("POST", "/api/jobs/j-unknown00/stop"), ("DELETE", "/api/jobs/j-unknown00")):
        answer = await rest.call(method, path, status=404)
        assert answer["code"] == "NOT_FOUND"


async def test_unknown_routes_under_api_answer_the_envelope(rest):
    answer = await rest.call("GET", "/api/jobs/j-1/nothing-here", status=404)
    assert answer["code"] == "NOT_FOUND"
    answer = await rest.call("PUT", "/api/jobs/create", status=405)
    assert answer["code"] == "METHOD_NOT_ALLOWED"


@pytest.fixture(scope="module")
async def finished_job(rest) -> str:
    job_id = await rest.create(OK)
    await rest.wait_for_status(job_id, "Succeeded", "Failed")
    return job_id
