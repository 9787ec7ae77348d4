"""KubernetesRuntime on Kueue and Volcano pools, against the fake's models of them
(tests/k8sfake/kueue.py, tests/k8sfake/volcano.py): a stop Kueue does not undo, why a
job waits, gang scheduling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from app.domain.jobs import JobStatus
from app.domain.pools import ResourcePool
from app.runtime.kubernetes import KubernetesRuntime
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.test_runtime import Harness

LOOP = "while :; do sleep 0.05; done"


async def queued_harness(tmp_path: Path, queueing: str, **fake_options) -> AsyncIterator[Harness]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with FakeKubernetes.running(delays=Delays(), **fake_options) as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        pool = ResourcePool(id="p", runtime="kubernetes", options={
            "kubeconfig": str(kubeconfig), "queueing": queueing,
            "priorityClasses": [{"name": "urgent", "value": 100}]})
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


def live_pods(fake: FakeKubernetes, job_id: str) -> list[dict]:
    return [p for p in fake.pods_of(job_id)
            if p["status"].get("phase") in ("Pending", "Running")
            and not p["metadata"].get("deletionTimestamp")]


async def settled(h: Harness) -> None:
    """The fake's controllers (Job, Kueue, kubelet) have nothing left to do."""
    await h.fake.wait_idle()
    await h.fake.wait_idle()


async def test_a_stopped_kueue_job_stays_stopped(tmp_path):
    async for h in queued_harness(tmp_path, "kueue", kueue=True):
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.QUEUED)
        await fake.wait_for(lambda: fake.workload(job.job_id))
        fake.admit(job.job_id)
        await h.status(job.job_id, JobStatus.RUNNING)
        await h.runtime.stop(job.job_id)
        await h.status(job.job_id, JobStatus.STOPPED)
        await settled(h)
        # Kueue did not unsuspend it: nothing runs, nothing can start.
        assert live_pods(fake, job.job_id) == []
        assert fake.job(job.job_id)["spec"]["suspend"] is True
        workload = fake.workload(job.job_id)
        assert workload["spec"]["active"] is False
        assert not any(c["type"] == "QuotaReserved" and c["status"] == "True"
                       for c in workload["status"]["conditions"])
        # The stop went through the Workload, and the job was STOPPED only once settled.
        [patch] = fake.calls("PATCH", "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/workloads/")
        assert patch.body == {"spec": {"active": False}}
        assert patch.headers["Content-Type"] == "application/merge-patch+json"
        last = [u.status for u in h.updates if u.job_id == job.job_id and u.status][-1]
        assert last is JobStatus.STOPPED
        await h.runtime.delete(job.job_id)
        await fake.wait_for(lambda: fake.job(job.job_id) is None and fake.workload(job.job_id) is None)


async def test_a_kueue_job_stopped_while_queued_is_never_admitted(tmp_path):
    async for h in queued_harness(tmp_path, "kueue", kueue=True):
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await fake.wait_for(lambda: fake.workload(job.job_id))
        await h.status(job.job_id, JobStatus.QUEUED)
        await h.runtime.stop(job.job_id)
        await h.status(job.job_id, JobStatus.STOPPED)
        # Quota frees up: Kueue's scheduler must not admit it, its Job must not start.
        fake.admit(job.job_id)
        await settled(h)
        assert fake.pods_of(job.job_id) == []
        assert fake.job(job.job_id)["spec"]["suspend"] is True
        assert fake.workload(job.job_id)["spec"]["active"] is False


async def test_a_kueue_job_without_a_workload_is_stopped_by_deleting_it(tmp_path):
    # Its priority class names no WorkloadPriorityClass: Kueue makes no Workload.
    async for h in queued_harness(tmp_path, "kueue", kueue=True):
        fake = h.fake
        job = h.job(LOOP, priority=100)
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.QUEUED)
        await fake.wait_for(lambda: fake.events_for(job.job_id, kind="Job"))
        await h.runtime.stop(job.job_id)
        stopped = await h.status(job.job_id, JobStatus.STOPPED, JobStatus.FAILED)
        assert stopped.status is JobStatus.STOPPED, stopped
        assert fake.job(job.job_id) is None
        # Creating the class now makes no difference: the Job is gone.
        fake.kueue.add_priority_class("urgent", 100)
        await settled(h)
        assert fake.pods_of(job.job_id) == [] and fake.workload(job.job_id) is None


async def test_deploy_rbac_allows_every_call_on_kueue_and_volcano_pools(tmp_path):
    from tests.kube.test_runtime import _allowed, _authorization_of, _rbac_rules

    rules = _rbac_rules()
    for queueing, options in (("kueue", {"kueue": True}), ("volcano", {"volcano": True})):
        async for h in queued_harness(tmp_path / queueing, queueing, **options):
            job = h.job(LOOP, replicas=2)
            await h.runtime.submit(job)
            if queueing == "kueue":
                await h.fake.wait_for(lambda: h.fake.workload(job.job_id))
                h.fake.admit(job.job_id)
            await h.status(job.job_id, JobStatus.RUNNING)
            await h.runtime.stop(job.job_id)
            await h.status(job.job_id, JobStatus.STOPPED)
            await h.runtime.delete(job.job_id)
            calls = [r for r in h.fake.requests if r.is_kubernetes_call]
            group = "kueue.x-k8s.io" if queueing == "kueue" else "scheduling.volcano.sh"
            assert any(_authorization_of(r)[0] == group for r in calls)
            for request in calls:
                g, resource, verbs = _authorization_of(request)
                assert _allowed(rules, g, resource, verbs), (request, g, resource, verbs)
