"""Pod logs: real process output, tail, follow until exit, waiting 400, JSON lines."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import Delays, FakeKubernetes
from tests.k8sfake.logs import rfc3339nano

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


# -- rotation, sinceTime, option checks ---------------------------------------------------

GATED = ('echo ready; while [ ! -e go1 ]; do sleep 0.05; done; '
         'i=0; while [ $i -lt 15 ]; do echo "burst line $i ..............................."; '
         'i=$((i+1)); done; while [ ! -e go2 ]; do sleep 0.05; done; echo after')


async def _rotation_case(across: bool) -> tuple[list[str], list[str], list[str]]:
    """(what a follow opened before the rotation saw, what a read afterwards sees, all
    lines written) with a 1000-byte containerLogMaxSize: the burst rotates once."""
    async with FakeKubernetes.running(token="test-token", delays=Delays(),
                                      container_log_max_size=1000,
                                      follow_across_rotation=across) as fake:
        c = client.Configuration()
        await config.load_kube_config_from_dict(fake.kubeconfig_dict(), client_configuration=c)
        async with client.ApiClient(c) as a:
            core, batch = client.CoreV1Api(a), client.BatchV1Api(a)
            await batch.create_namespaced_job("default", job_manifest("rot", ["sh", "-c", GATED]))
            pod = await _pod(fake, "rot", "Running")
            followed: list[str] = []

            async def follow() -> None:
                async for line in watch.Watch().stream(core.read_namespaced_pod_log, pod,
                                                       "default"):
                    followed.append(line.rstrip("\n"))

            task = asyncio.create_task(follow())
            await fake.wait_for(lambda: followed == ["ready"])
            workdir = fake.kubelet.root / fake.pod(pod)["metadata"]["uid"]
            (workdir / "go1").touch()
            await fake.wait_for(lambda: "burst line 14" in fake.container_log(pod))
            resp = await core.read_namespaced_pod_log(pod, "default", _preload_content=False)
            after_rotation = (await resp.read()).decode().splitlines()
            (workdir / "go2").touch()
            await asyncio.wait_for(task, 10)  # EOF once the container has ended
            return followed, after_rotation, fake.container_log(pod).splitlines()


async def test_the_kubelet_serves_the_current_file_and_old_follows_stall_at_rotation() -> None:
    followed, after_rotation, written = await _rotation_case(across=False)
    assert written[0] == "ready" and written[-1] == "after" and len(written) == 17
    # Only the current file is served: the lines rotated away are not.
    assert after_rotation and written[-1 - len(after_rotation):-1] == after_rotation
    assert "ready" not in after_rotation
    # The follow read the renamed file to its end, then nothing more until EOF.
    assert followed == written[: len(written) - 1 - len(after_rotation)]


async def test_newer_kubelets_follow_across_a_rotation() -> None:
    followed, after_rotation, written = await _rotation_case(across=True)
    assert "ready" not in after_rotation
    assert followed == written


async def test_since_time_counts_whole_seconds_and_bad_options_are_refused(
        fake: FakeKubernetes, batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    script = 'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.3; done'
    await batch.create_namespaced_job("default", job_manifest("st", ["sh", "-c", script]))
    pod = await _pod(fake, "st", "Succeeded")
    entries = next(log for log in fake.logs.values() if b"line 6" in log.entries[-1][1]).entries
    url = f"{fake.url}/api/v1/namespaces/default/pods/{pod}/log"
    headers = {"Authorization": f"Bearer {fake.token}"}

    async def get(**params: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(
                url, params=params, headers=headers) as resp:
            return resp.status, await resp.text()

    third = rfc3339nano(entries[2][0])  # with nanoseconds
    status, text = await get(sinceTime=third, timestamps="true")
    assert status == 200
    second = entries[2][0] // 10**9 * 10**9
    expected = [rfc3339nano(ts) + " " + data.decode().rstrip("\n")
                for ts, data in entries if ts >= second]
    assert text.splitlines() == expected  # from the start of that second, not the line

    status, text = await get(sinceTime=third, sinceSeconds="5")
    body = json.loads(text)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "PodLogOptions" and body["details"]["name"] == pod
    assert "at most one of `sinceTime` or `sinceSeconds` may be specified" in body["message"]
    status, text = await get(tailLines="-1")
    assert status == 422 and "must be greater than or equal to 0" in json.loads(text)["message"]
    status, text = await get(limitBytes="0")
    assert status == 422 and "must be greater than 0" in json.loads(text)["message"]
    status, text = await get(sinceTime="yesterday")
    assert status == 400 and json.loads(text)["reason"] == "BadRequest"
    # tailLines counts lines of the file before sinceTime filters them (ReadLogs seeks first).
    status, text = await get(tailLines="2", sinceTime=rfc3339nano(entries[0][0]))
    assert text.splitlines() == ["line 5", "line 6"]
    # limitBytes cuts inside a line, timestamps included.
    status, text = await get(limitBytes="10", timestamps="true")
    assert text == (rfc3339nano(entries[0][0]) + " line 1\n")[:10]
