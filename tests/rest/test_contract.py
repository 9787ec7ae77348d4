"""Every documented /api/jobs call, in the documented and the legacy shapes, against the
real server; each answer equals what the same GraphQL operation returns on /graphql."""

from __future__ import annotations

import json

import httpx

from tests.support.jobs import PY
from tests.support.rest import is_terminal_url, legacy, sse_events

IMAGE = "registry.example/train:1"


def flat(name: str, code: str, **extra) -> dict:
    return {"jobName": name, "image": IMAGE, "command": [PY, "-c", code], **extra}


async def test_create_get_events_logs_delete_walk_the_contract(rest):
    job_id = await rest.create(
        flat("训练 任务", "print('hello'); print('world')", resourcePoolId="local", queue="default")
    )
    done = await rest.wait_for_status(job_id, "Succeeded", "Failed")
    assert done["status"] == "Completed" and done["jobStatus"] == "SUCCEEDED", done

    # GET: the job with config and pods; `data.job` is the same object.
    got = (await rest.call("GET", f"/api/jobs/{job_id}", params={"needDetail": "true"}))["data"]
    graphql = await rest.operation("RestGetJob", {"jobId": job_id})
    assert {k: v for k, v in got.items() if k != "job"} == legacy(graphql["data"]["job"])
    assert got["job"] == {k: v for k, v in got.items() if k != "job"}
    assert got["jobName"] == "训练 任务" and got["createdAt"].endswith("Z")
    assert got["config"]["image"] == IMAGE and got["config"]["command"][0] == PY
    [pod] = got["pods"]
    assert pod["name"] == f"{job_id}-0" and pod["status"] == "Succeeded" and "nodeName" in pod

    # Events, oldest first, and within a window.
    events = (await rest.call("GET", f"/api/jobs/{job_id}/events"))["data"]["events"]
    graphql = await rest.operation("RestJobEvents", {"jobId": job_id})
    assert events == graphql["data"]["job"]["events"]
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert {"type", "reason", "message", "timestamp"} <= set(events[0])
    # (timestamps are shown to the millisecond: the window starts at the last one shown)
    window = {"startTime": events[-1]["timestamp"], "endTime": "2999-01-01T00:00:00Z"}
    narrowed = (await rest.call("GET", f"/api/jobs/{job_id}/events", params=window))["data"]["events"]
    assert narrowed[-1] == events[-1] and events[0] not in narrowed
    graphql = await rest.operation("RestJobEvents", {"jobId": job_id, "since": window["startTime"], "until": window["endTime"]})
    assert narrowed == graphql["data"]["job"]["events"]

    # Logs: all, tail, legacy keywords and maxLines.
    path = f"/api/jobs/{job_id}/pods/{pod['name']}/logs"
    logs = (await rest.call("GET", path))["data"]["logs"]
    graphql = await rest.operation("RestPodLogs", {"jobId": job_id, "podName": pod["name"]})
    assert logs == graphql["data"]["job"]["logs"] == "hello\nworld\n"
    assert (await rest.call("GET", path, params={"tailLines": 1}))["data"]["logs"] == "world\n"
    assert (await rest.call("GET", path, params={"keywords": "hel"}))["data"]["logs"] == "hello\n"
    assert (await rest.call("GET", path, params={"maxLines": 1}))["data"]["logs"] == "world\n"

    # Stop of a finished job is a conflict, as the core says.
    conflict = await rest.call("POST", f"/api/jobs/{job_id}/stop", status=409)
    assert conflict["code"] == "CONFLICT" and "already ended" in conflict["message"]

    # Delete: then gone from get and list.
    deleted = await rest.call("DELETE", f"/api/jobs/{job_id}")
    assert deleted["message"] == "任务已删除"
    await rest.call("GET", f"/api/jobs/{job_id}", status=404)
    listed = (await rest.call("POST", "/api/jobs", json={"keyword": job_id}))["data"]
    assert listed == {"jobs": [], "totalCount": 0}


async def test_list_filters_pages_and_equals_graphql(rest):
    ids = [await rest.create(flat(f"list-{i}", "pass")) for i in range(3)]
    for job_id in ids:
        await rest.wait_for_status(job_id, "Succeeded")

    everything = (await rest.call("POST", "/api/jobs", json={}))["data"]
    assert everything["totalCount"] >= 3 and len(everything["jobs"]) <= 100
    # No body at all works too, and so does an explicit JSON null.
    assert (await rest.call("POST", "/api/jobs"))["data"] == everything
    assert (await rest.call("POST", "/api/jobs", content=b"null"))["data"] == everything

    body = {"keyword": "list-", "status": "succeeded", "pageNumber": 1, "pageSize": 2}
    page1 = (await rest.call("POST", "/api/jobs", json=body, params={"resourcePoolId": "local", "queueID": "default"}))["data"]
    graphql = await rest.operation("RestListJobs", {
        "filter": {"keyword": "list-", "status": ["SUCCEEDED"], "resourcePoolId": "local", "queue": "default"},
        "first": 2, "offset": 0,
    })
    assert page1 == legacy(graphql["data"]["jobs"])
    assert page1["totalCount"] >= 3 and len(page1["jobs"]) == 2
    job = page1["jobs"][0]
    assert {"jobId", "jobName", "status", "createdAt", "resourcePoolId", "queue", "owner", "finishedAt"} <= set(job)
    assert job["status"] == "Completed" and job["jobStatus"] == "SUCCEEDED" and job["owner"] == "alice"

    page2 = (await rest.call("POST", "/api/jobs", json={**body, "pageNumber": 2}))["data"]
    assert not {j["jobId"] for j in page1["jobs"]} & {j["jobId"] for j in page2["jobs"]}
    for spelling in ("Succeeded", "SUCCEEDED", "completed", ["Completed", "failed"]):
        same = (await rest.call("POST", "/api/jobs", json={**body, "status": spelling}))["data"]
        assert same == page1
    other_pool = await rest.call("POST", "/api/jobs", json={}, params={"resourcePoolId": "nope"})
    assert other_pool["data"] == {"jobs": [], "totalCount": 0}


async def test_the_taskparams_shapes_create_the_same_kind_of_job(rest):
    unified = {
        "name": "api-0513-2", "queueName": "default", "replicas": 1,
        "container": {
            "image": IMAGE, "command": ["/bin/sh", "-c", "sleep 1d"],
            "resources": {"cpus": 4, "memory": 8, "gpu": {"count": 0}},
            "envs": [{"name": "NCCL_DEBUG", "value": "DEBUG"}],
            "volumes": [{"type": "PFS", "name": "pfs-x", "mountPath": "/mnt/cluster",
                         "sourcePath": "/", "readOnly": False}],
        },
        "priority": "normal", "maxRetries": 0,
        "command": "echo unified",  # replaces the container command, through a shell
    }
    native = {
        "name": "native-1", "queue": "default", "jobType": "PyTorchJob", "command": "echo native",
        "jobSpec": {"replicas": 1, "image": IMAGE, "envs": [{"name": "A", "value": "1"}]},
        "labels": {"team": "vision"}, "datasources": [{"name": "ds"}],
    }
    for task_params, expected in (
        (unified, "unified"), (json.dumps(unified), "unified"),
        (native, "native"), (json.dumps(native), "native"),
    ):
        job_id = await rest.create({"taskParams": task_params})
        job = await rest.wait_for_status(job_id, "Succeeded", "Failed")
        assert job["status"] == "Completed", job
        assert job["command"] == ["/bin/sh", "-c", f"echo {expected}"]
        logs = await rest.call("GET", f"/api/jobs/{job_id}/pods/{job_id}-0/logs")
        assert logs["data"]["logs"] == f"{expected}\n"
        config = job["config"]
        if expected == "unified":
            assert config["resources"] == {"cpus": 4, "memory": 8, "gpu": 0}
            assert config["envs"] == [{"name": "NCCL_DEBUG", "value": "DEBUG"}]
            assert config["priority"] == 0 and job["jobName"] == "api-0513-2"
        else:
            assert config["labels"] == {"team": "vision"} and config["envs"] == [{"name": "A", "value": "1"}]
    high = await rest.create({"taskParams": {**unified, "priority": "high", "command": "true"}})
    assert (await rest.call("GET", f"/api/jobs/{high}"))["data"]["priority"] == 100


async def test_stop_a_running_job_and_follow_its_log(rest):
    code = "import time\nfor i in range(3): print('line', i, flush=True); time.sleep(0.05)\ntime.sleep(60)"
    job_id = await rest.create(flat("follow me", code))
    await rest.wait_for_status(job_id, "Running")
    pod = f"{job_id}-0"
    # Follow: one SSE message per line; stop ends the pod, which ends the stream.
    lines: list[str] = []
    events: list[str] = []
    url = f"/api/jobs/{job_id}/pods/{pod}/logs"
    async with rest.http.stream("GET", url, params={"follow": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event, data in sse_events(response):
            events.append(event)
            if event == "message":
                lines.append(data)
                if len(lines) == 3:
                    stopped = await rest.call("POST", f"/api/jobs/{job_id}/stop")
                    assert stopped["message"] == "任务已停止"
                    assert stopped["data"]["status"] in {"Stopping", "Stopped"}
            if event == "end":
                break
    assert lines == ["line 0", "line 1", "line 2"] and events[-1] == "end"
    assert (await rest.wait_for_status(job_id, "Stopped"))["status"] == "Stopped"


async def test_follow_refuses_before_streaming(rest):
    job_id = await rest.create(flat("short", "print('x')"))
    await rest.wait_for_status(job_id, "Succeeded")
    path = f"/api/jobs/{job_id}/pods/%s/logs"
    unknown = await rest.call("GET", path % "nope", params={"follow": "true"}, status=404)
    assert unknown["code"] == "NOT_FOUND" and "nope" in unknown["message"]
    negative = await rest.call("GET", path % f"{job_id}-0", params={"follow": "true", "tailLines": -1}, status=400)
    assert "tailLines" in negative["message"]
    # A finished pod: its lines, then `end`.
    response = await rest.http.get(path % f"{job_id}-0", params={"follow": "true"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "data: x" in response.text and "event: end" in response.text


async def test_web_terminal_url(rest):
    finished = await rest.create(flat("finished", "pass"))
    await rest.wait_for_status(finished, "Succeeded")
    ended = await rest.call("GET", f"/api/jobs/{finished}/pods/{finished}-0/webterminal", status=409)
    assert ended["code"] == "CONFLICT" and "not running" in ended["message"]

    job_id = await rest.create(flat("terminal", "import time; time.sleep(600)"))
    await rest.wait_for_status(job_id, "Running")  # its pod is known by then
    pod = f"{job_id}-0"
    path = f"/api/jobs/{job_id}/pods/{pod}/webterminal"
    data = (await rest.call("GET", path))["data"]
    assert data["webTerminalUrl"] == data["WebTerminalUrl"]
    assert is_terminal_url(data["webTerminalUrl"])
    assert data["webTerminalUrl"].startswith(f"ws://{httpx.URL(str(rest.http.base_url)).netloc.decode()}/webterminal/")
    proxied = (await rest.call("GET", path, headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "jobs.example.com",
    }))["data"]["webTerminalUrl"]
    assert proxied.startswith("wss://jobs.example.com/webterminal/")
    # Each call issues a fresh credential; GraphQL answers in the same shape.
    graphql = await rest.operation("RestOpenWebTerminal", {"jobId": job_id, "podName": pod})
    payload = graphql["data"]["openWebTerminal"]
    assert payload["userErrors"] == [] and is_terminal_url(payload["url"])
    assert payload["url"] != data["webTerminalUrl"]
    for bad in ("nope", "..%2F..%2Fetc%2Fpasswd"):
        missing = await rest.call("GET", f"/api/jobs/{job_id}/pods/{bad}/webterminal", status=404)
        assert missing["code"] == "NOT_FOUND"
    graphql = await rest.operation("RestOpenWebTerminal", {"jobId": job_id, "podName": "../../etc/passwd"})
    [error] = graphql["data"]["openWebTerminal"]["userErrors"]
    assert error["code"] == "NOT_FOUND" and error["field"] == "podName"
    await rest.call("POST", f"/api/jobs/{job_id}/stop")


async def test_other_users_jobs_are_not_found_and_credentials_are_required(rest, rest_bob, anonymous):
    job_id = await rest.create(flat("private", "pass"))
    for method, path in (
        ("GET", f"/api/jobs/{job_id}"), ("POST", f"/api/jobs/{job_id}/stop"),
        ("DELETE", f"/api/jobs/{job_id}"), ("GET", f"/api/jobs/{job_id}/events"),
        ("GET", f"/api/jobs/{job_id}/pods/{job_id}-0/logs"),
        ("GET", f"/api/jobs/{job_id}/pods/{job_id}-0/webterminal"),
    ):
        body = await rest_bob.call(method, path, status=404)
        assert body["code"] == "NOT_FOUND"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            response = await anonymous.request(method, path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["success"] is False and response.json()["code"] == "UNAUTHENTICATED"
    assert job_id not in {j["jobId"] for j in (await rest_bob.call("POST", "/api/jobs"))["data"]["jobs"]}
    for method, path in (("POST", "/api/jobs"), ("POST", "/api/jobs/create")):
        assert (await anonymous.request(method, path, json={})).status_code == 401
    # The GraphQL route keeps refusing unauthenticated requests.
    assert (await anonymous.post("/graphql", json={"query": "{ jobs { totalCount } }"})).status_code == 401


async def test_openapi_documents_the_routes_and_create_shapes(anonymous):
    document = (await anonymous.get("/openapi.json")).json()
    for path in ("/api/jobs", "/api/jobs/create", "/api/jobs/{jobId}", "/api/jobs/{jobId}/stop",
                 "/api/jobs/{jobId}/events", "/api/jobs/{jobId}/pods/{podName}/logs",
                 "/api/jobs/{jobId}/pods/{podName}/webterminal"):
        assert path in document["paths"], path
    create = document["paths"]["/api/jobs/create"]["post"]["requestBody"]["content"]["application/json"]
    refs = {r["$ref"].rsplit("/", 1)[1] for r in create["schema"]["oneOf"]}
    assert refs == {"FlatCreateRequest", "TaskParamsRequest"}
    schemas = document["components"]["schemas"]
    for name in ("FlatCreateRequest", "TaskParamsRequest", "UnifiedTaskParams", "NativeTaskParams",
                 "LoginRequest", "LoginAnswer", "LoginRefused"):
        assert name in schemas, name
    # The legacy console's calls and words (issue 10).
    assert {"/api/login/account", "/api/login/outLogin"} <= set(document["paths"])
    summary = schemas["JobSummary"]["properties"]
    assert {"name", "userId", "jobStatus"} <= set(summary)
    assert "Completed" in summary["status"]["description"]
    assert "ManualTermination" in schemas["ListJobsRequest"]["properties"]["status"]["description"]
    assert "X-Auth-Token" in document["info"]["description"]
    assert "JOBGRAPH_CORS_ORIGINS" in document["info"]["description"]
    assert (await anonymous.get("/docs")).status_code == 200


async def test_openapi_documents_how_to_authenticate(anonymous):
    document = (await anonymous.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerToken"]["type"] == "http"
    assert schemes["bearerToken"]["scheme"].lower() == "bearer"
    assert schemes["legacyAuthToken"] == {
        "type": "apiKey", "in": "header", "name": "X-Auth-Token",
        "description": schemes["legacyAuthToken"]["description"],
    }
    # Every REST operation says it takes either.
    for path in ("/api/jobs", "/api/jobs/{jobId}", "/api/jobs/{jobId}/pods/{podName}/logs"):
        for operation in document["paths"][path].values():
            assert {"bearerToken": []} in operation["security"], (path, operation)
            assert {"legacyAuthToken": []} in operation["security"], (path, operation)
