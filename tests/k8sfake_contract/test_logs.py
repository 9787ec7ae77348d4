"""Pod logs: real process output, tail, follow until exit, waiting 400, JSON lines."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


async def _pod(fake: FakeKubernetes, job: str, phase: str | None = None) -> str:
    pods = await fake.wait_for(lambda: [p for p in fake.pods_of(job) if phase is None
                                        or p["status"].get("phase") == phase])
    return pods[0]["metadata"]["name"]


async def test_tail_and_json_lines(fake: FakeKubernetes, batch: client.BatchV1Api,
                                   core: client.CoreV1Api) -> None:
    script = ('for i in 1 2 3 4 5; do echo "{\\"step\\": $i, \\"loss\\": 0.$i}"; done; '
              'echo oops >&2')
    await batch.create_namespaced_job("default", job_manifest("lg", ["sh", "-c", script]))
    pod = await _pod(fake, "lg", "Succeeded")
    resp = await core.read_namespaced_pod_log(pod, "default", _preload_content=False)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    lines = (await resp.read()).decode().splitlines()
    assert [json.loads(x)["step"] for x in lines[:5]] == [1, 2, 3, 4, 5] and lines[5] == "oops"
    resp = await core.read_namespaced_pod_log(pod, "default", tail_lines=2, timestamps=True,
                                              _preload_content=False)
    tail = (await resp.read()).decode().splitlines()
    assert len(tail) == 2 and tail[1].endswith(" oops") and tail[0].split(" ", 1)[0].endswith("Z")
    # the documented preload quirk: a one-line JSON log comes back as a Python repr
    resp = await core.read_namespaced_pod_log(pod, "default", tail_lines=1, limit_bytes=3,
                                              _preload_content=False)
    assert await resp.read() == b"oop"
    rec = fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/log")[1]
    assert rec.param("tailLines") == "2" and rec.param("timestamps") == "True"
    assert rec.headers["Accept"] == "application/json"


async def test_follow_streams_until_the_container_exits(fake: FakeKubernetes,
                                                        batch: client.BatchV1Api,
                                                        core: client.CoreV1Api) -> None:
    # the container prints, then waits for a file the test creates: no sleeps anywhere
    script = 'echo started; while [ ! -e go ]; do sleep 0.05; done; echo finished'
    await batch.create_namespaced_job("default", job_manifest("fl", ["sh", "-c", script]))
    pod = await _pod(fake, "fl", "Running")
    lines: list[str] = []

    async def follow() -> None:
        async for line in watch.Watch().stream(core.read_namespaced_pod_log, pod, "default"):
            lines.append(line)

    task = asyncio.create_task(follow())
    await fake.wait_for(lambda: lines == ["started\n"])
    uid = fake.pod(pod)["metadata"]["uid"]
    (fake.kubelet.root / uid / "go").touch()
    await asyncio.wait_for(task, 10)  # EOF when the container terminates
    assert lines == ["started\n", "finished\n"]
    assert fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/log")[0].param(
        "follow") == "True"


async def test_waiting_container_gives_400(fake: FakeKubernetes, batch: client.BatchV1Api,
                                           core: client.CoreV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "ip", ["true"], image="fake.invalid/nope:1"))
    pods = await fake.wait_for(lambda: [
        p for p in fake.pods_of("ip")
        if (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get(
            "waiting", {}).get("reason") == "ImagePullBackOff"])
    name = pods[0]["metadata"]["name"]
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log(name, "default")
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        f'container "main" in pod "{name}" is waiting to start: trying and failing to pull image')
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log(name, "default", container="other")
    assert json.loads(e.value.body)["message"] == f"container other is not valid for pod {name}"


async def test_on_failure_restart_serves_previous_logs(fake: FakeKubernetes,
                                                       batch: client.BatchV1Api,
                                                       core: client.CoreV1Api) -> None:
    script = 'if [ -e ran ]; then echo second; else touch ran; echo first; exit 1; fi'
    await batch.create_namespaced_job("default", job_manifest(
        "of", ["sh", "-c", script], restart_policy="OnFailure"))
    await fake.wait_job_condition("of", "Complete")
    pod = fake.pods_of("of")[0]
    st = pod["status"]["containerStatuses"][0]
    assert st["restartCount"] == 1 and st["lastState"]["terminated"]["exitCode"] == 1
    name = pod["metadata"]["name"]
    prev = await core.read_namespaced_pod_log(name, "default", previous=True,
                                              _preload_content=False)
    cur = await core.read_namespaced_pod_log(name, "default", _preload_content=False)
    assert (await prev.read(), await cur.read()) == (b"first\n", b"second\n")
    assert "BackOff" in [e["reason"] for e in fake.events_for(name)]
