"""KubernetesRuntime in-process against the fake: the exec terminal, logs of a container
that has not started, API errors as the core's errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.domain.errors import Conflict, NotFound, PermissionDenied, RuntimeUnavailable
from app.domain.jobs import EnvVar, Job, JobSpec, JobStatus, new_job_id
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate
from app.runtime.kubernetes import KubernetesRuntime
from tests.k8sfake import Delays, FakeKubernetes


class Harness:
    def __init__(self, fake: FakeKubernetes, runtime: KubernetesRuntime, home: Path) -> None:
        self.fake = fake
        self.runtime = runtime
        self.home = home
        self.updates: list[JobUpdate] = []
        self._seen = asyncio.Event()

    async def consume(self) -> None:
        async for update in self.runtime.watch():
            self.updates.append(update)
            self._seen.set()

    def job(self, script: str, **spec) -> Job:
        return Job(job_id=new_job_id(), owner="alice", spec=JobSpec(
            name=spec.pop("name", "runtime test"), command=("/bin/sh", "-c", script),
            resource_pool_id="p", queue="default", image="registry.example/x:1",
            envs=(EnvVar("HOME", str(self.home)),), **spec))

    async def next_update(self) -> None:
        self._seen.clear()
        await self._seen.wait()

    async def status(self, job_id: str, *statuses: JobStatus, timeout: float = 10) -> JobUpdate:
        async with asyncio.timeout(timeout):
            while True:
                for update in reversed(self.updates):
                    if update.job_id == job_id and update.status is not None:
                        if update.status in statuses:
                            return update
                        break
                self._seen.clear()
                await self._seen.wait()


async def harness(tmp_path: Path, **fake_options) -> AsyncIterator[Harness]:
    async with FakeKubernetes.running(**fake_options) as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        pool = ResourcePool(id="p", runtime="kubernetes", options={"kubeconfig": str(kubeconfig)})
        runtime = KubernetesRuntime(pool, archive_dir=tmp_path / "archive")
        await runtime.start([])
        h = Harness(fake, runtime, tmp_path)
        consumer = asyncio.create_task(h.consume())
        try:
            yield h
        finally:
            consumer.cancel()
            await runtime.close()
            assert not fake.controller_errors


@pytest.fixture
async def h(tmp_path) -> AsyncIterator[Harness]:
    async for item in harness(tmp_path, delays=Delays()):
        yield item


async def test_the_terminal_runs_a_shell_in_the_pod(h):
    job = h.job("while :; do sleep 0.05; done")
    await h.runtime.submit(job)
    running = await h.status(job.job_id, JobStatus.RUNNING)
    pod = running.pods[0].name
    terminal = await h.runtime.open_terminal(job.job_id, pod, rows=24, cols=80)
    try:
        await terminal.write(b"stty size; echo $((6*7))\n")
        output = b""
        async with asyncio.timeout(10):
            while b"\n42\r\n" not in output:
                output += await terminal.read()
        assert b"24 80\r\n" in output
        await terminal.write(b"exit 3\n")
        async with asyncio.timeout(10):
            while await terminal.read():
                pass
        assert terminal.exit_code == 3
    finally:
        await terminal.close()
    exec_call = h.fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/exec")[-1]
    assert exec_call.headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io"
    assert exec_call.param("tty") == "True" and exec_call.param("container") == "main"
    # Only running pods take a terminal; unknown ones are not found.
    with pytest.raises(NotFound):
        await h.runtime.open_terminal(job.job_id, "nope", rows=24, cols=80)
    await h.runtime.delete(job.job_id)


async def test_logs_of_a_container_that_has_not_started(tmp_path):
    async for h in harness(tmp_path, delays=Delays(pull=30)):
        job = h.job("echo ready; echo steady")
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.PENDING)
        async with asyncio.timeout(10):
            while True:  # until the runtime has seen the pod waiting for its container
                pods = next((u.pods for u in reversed(h.updates)
                             if u.job_id == job.job_id and u.pods), ())
                if pods and pods[0].reason == "ContainerCreating":
                    break
                await h.next_update()
        name = pods[0].name
        with pytest.raises(Conflict) as error:
            async for _ in h.runtime.logs(job.job_id, name, tail_lines=None, follow=False):
                pass
        assert "has not started yet" in error.value.message
        # Following waits for the container, then streams it to the end.
        follow = h.runtime.logs(job.job_id, name, tail_lines=None, follow=True)
        first = asyncio.ensure_future(anext(follow))
        await asyncio.sleep(0)
        assert not first.done()
        await h.fake.advance(30)
        assert await asyncio.wait_for(first, 10) == "ready"
        assert [line async for line in follow] == ["steady"]


async def test_api_errors_become_the_cores_errors(h):
    h.fake.fail_next(1, status=403, method="POST")
    with pytest.raises(PermissionDenied) as denied:
        await h.runtime.submit(h.job("true"))
    assert "deploy/rbac.yaml" in denied.value.message
    with pytest.raises(NotFound):
        await h.runtime.stop("j-missing0")
    h.fake.fail_next(5, status=503, method="PATCH")
    job = h.job("while :; do sleep 0.05; done")
    await h.runtime.submit(job)
    await h.status(job.job_id, JobStatus.RUNNING)
    with pytest.raises(RuntimeUnavailable):
        await h.runtime.stop(job.job_id)
    h.fake.clear_faults()
    # A create that meets an existing Job of its own is the idempotent answer.
    await h.runtime.submit(job)
    await h.runtime.delete(job.job_id)
    await h.fake.wait_for(lambda: not h.fake.pods_of(job.job_id))


def _rbac_rules() -> list[dict]:
    import yaml

    docs = yaml.safe_load_all((Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml").read_text())
    roles = [d for d in docs if d and d["kind"] in ("Role", "ClusterRole")]
    # A namespaced request is allowed by the Role (or a ClusterRole); a cluster-scoped one
    # (nodes) only by a ClusterRole: each rule is tagged with where it applies.
    return [{**rule, "clusterScoped": role["kind"] == "ClusterRole"}
            for role in roles for rule in role["rules"]]


def _allowed(rules: list[dict], group: str, resource: str, verbs: set[str],
             cluster_scoped: bool = False) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verbs & set(r["verbs"])
        and (r["clusterScoped"] or not cluster_scoped)
        for r in rules
    )


def _authorization_of(request) -> tuple[str, str, set[str]]:
    import re

    m = re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)/namespaces/[^/]+/([^/]+)(?:/([^/]+)(?:/([^/]+))?)?$",
                 request.path) or re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)/(nodes)(?:/([^/]+))?()$",
                                           request.path)
    assert m, request
    group, resource, name, sub = m.groups()
    resource = f"{resource}/{sub}" if sub else resource
    if request.method == "GET":
        verbs = {"watch"} if request.param("watch") else {"get"} if name else {"list"}
        if sub == "exec":
            verbs = {"get", "create"}  # either, by API server version
    else:
        verbs = {{"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[request.method]}
    return group or "", resource, verbs


async def test_deploy_rbac_allows_every_call_the_runtime_makes(h):
    job = h.job('echo "rank $RANK"; while :; do sleep 0.05; done', replicas=2)
    await h.runtime.submit(job)
    running = await h.status(job.job_id, JobStatus.RUNNING)
    lines = [line async for line in h.runtime.logs(
        job.job_id, running.pods[0].name, tail_lines=10, follow=False)]
    assert lines == ["rank 0"]
    terminal = await h.runtime.open_terminal(job.job_id, running.pods[1].name, rows=10, cols=40)
    await terminal.close()
    await h.runtime.stop(job.job_id)
    await h.status(job.job_id, JobStatus.STOPPED)
    await h.runtime.delete(job.job_id)
    await h.fake.wait_for(lambda: not h.fake.pods_of(job.job_id))
    rules = _rbac_rules()
    calls = [r for r in h.fake.requests if r.is_kubernetes_call]
    assert {r.method for r in calls} >= {"GET", "POST", "PATCH", "DELETE"}
    for request in calls:
        group, resource, verbs = _authorization_of(request)
        assert _allowed(rules, group, resource, verbs, "/namespaces/" not in request.path), (
            request, group, resource, verbs)
