"""The REST facade on a kubernetes pool backed by the fake API server."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.kube.conftest import shell_job
from tests.support.rest import Rest, sse_events


@pytest.fixture
async def rest(cluster) -> AsyncIterator[Rest]:
    client = Rest(cluster.url, cluster.env.alice_token, cluster.alice)
    yield client
    await client.close()


def flat(name: str, script: str, tmp_path, **extra) -> dict:
    spec = shell_job(script, tmp_path, name=name)
    return {"jobName": spec["name"], "command": spec["command"], "envs": spec["envs"],
            "image": "registry.example/train:2", "resourcePoolId": "k8s", **extra}


async def test_create_list_get_events_logs_and_delete(rest, cluster, tmp_path):
    fake = cluster.fake
    job_id = await rest.create(flat("训练 REST", "echo one; echo two; echo three", tmp_path))
    done = await rest.wait_for_status(job_id, "Succeeded", "Failed")
    assert done["status"] == "Completed" and done["jobStatus"] == "SUCCEEDED", done
    async with asyncio.timeout(20):  # the pod comes on its own watch, maybe just after
        while done["pods"][0]["status"] != "Succeeded":
            await asyncio.sleep(0.05)
            done = (await rest.call("GET", f"/api/jobs/{job_id}"))["data"]
    [pod] = done["pods"]
    assert pod["name"].startswith(job_id + "-") and pod["status"] == "Succeeded"
    assert done["jobName"] == "训练 REST"

    path = f"/api/jobs/{job_id}/pods/{pod['name']}/logs"
    assert (await rest.call("GET", path))["data"]["logs"] == "one\ntwo\nthree\n"
    assert (await rest.call("GET", path, params={"tailLines": 2}))["data"]["logs"] == "two\nthree\n"
    async with asyncio.timeout(20):  # events come on their own watch
        while True:
            events = (await rest.call("GET", f"/api/jobs/{job_id}/events"))["data"]["events"]
            if {"SuccessfulCreate", "Started", "Completed"} <= {e["reason"] for e in events}:
                break
            await asyncio.sleep(0.05)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)

    # A page of jobs and a job with its pods: answered from the database alone.
    await fake.wait_idle()
    mark = len(fake.requests)
    listed = (await rest.call("POST", "/api/jobs", json={"pageSize": 50}))["data"]
    assert job_id in [j["jobId"] for j in listed["jobs"]]
    got = (await rest.call("GET", f"/api/jobs/{job_id}"))["data"]
    assert got["pods"][0]["name"] == pod["name"]
    await rest.call("GET", f"/api/jobs/{job_id}/events")
    assert [r for r in fake.requests[mark:] if r.is_kubernetes_call] == []

    await rest.call("DELETE", f"/api/jobs/{job_id}")
    delete = [r for r in fake.calls("DELETE", "/apis/batch/v1") if r.path.endswith("/" + job_id)]
    assert [r.param("propagationPolicy") for r in delete] == ["Background"]
    await fake.wait_for(lambda: fake.job(job_id) is None and not fake.pods_of(job_id))
    await rest.call("GET", f"/api/jobs/{job_id}", status=404)


async def test_follow_a_log_over_sse_then_stop(rest, cluster, tmp_path):
    fake = cluster.fake
    script = "for i in 0 1 2; do echo line $i; done; while :; do sleep 0.05; done"
    job_id = await rest.create(flat("follow me", script, tmp_path))
    running = await rest.wait_for_status(job_id, "Running")
    pod = running["pods"][0]["name"]
    lines: list[str] = []
    events: list[str] = []
    async with rest.http.stream("GET", f"/api/jobs/{job_id}/pods/{pod}/logs",
                                params={"follow": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event, data in sse_events(response):
            events.append(event)
            if event == "message":
                lines.append(data)
                if len(lines) == 3:
                    stopped = await rest.call("POST", f"/api/jobs/{job_id}/stop")
                    assert stopped["data"]["status"] in {"Stopping", "Stopped"}
            if event == "end":
                break
    assert lines == ["line 0", "line 1", "line 2"] and events[-1] == "end"
    stopped = await rest.wait_for_status(job_id, "Stopped")
    assert stopped["pods"][0]["status"] in {"Failed", "Succeeded"}
    await fake.wait_for(lambda: not fake.pods_of(job_id))
    # The pod is gone; its log was archived and is still served.
    logs = (await rest.call("GET", f"/api/jobs/{job_id}/pods/{pod}/logs"))["data"]["logs"]
    assert logs.startswith("line 0\nline 1\nline 2\n")
    conflict = await rest.call("POST", f"/api/jobs/{job_id}/stop", status=409)
    assert conflict["code"] == "CONFLICT"


async def test_a_job_whose_archive_cannot_be_removed_is_deleted_all_the_same(rest, cluster, tmp_path):
    """The Job goes from the cluster before its archive: an archive left behind (here a
    file where its directory was, which rmtree refuses) is logged, the deletion stands."""
    job_id = await rest.create(flat("archived", "echo kept", tmp_path))
    await rest.wait_for_status(job_id, "Succeeded", "Failed")
    folder = cluster.env.server.data_dir / "kubernetes" / "k8s" / job_id
    async with asyncio.timeout(20):  # archived in the server's threads: no event to await
        while not list(folder.glob("*.done")):
            await asyncio.sleep(0.05)
    shutil.rmtree(folder)
    folder.write_text("not a directory")
    await rest.call("DELETE", f"/api/jobs/{job_id}")
    await rest.call("GET", f"/api/jobs/{job_id}", status=404)
    assert cluster.fake.job(job_id) is None
