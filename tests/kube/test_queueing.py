"""KubernetesRuntime on Kueue and Volcano pools, against the fake's models of them
(tests/k8sfake/kueue.py, tests/k8sfake/volcano.py): a stop Kueue does not undo, why a
job waits, gang scheduling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from app.domain.jobs import JobStatus, PodPhase, Resources
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate
from app.runtime.kubernetes import KubernetesRuntime
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.test_runtime import Harness

LOOP = "while :; do sleep 0.05; done"


@asynccontextmanager
async def queued_harness(tmp_path: Path, queueing: str, **fake_options) -> AsyncIterator[Harness]:
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
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
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.QUEUED)
        await fake.wait_for(lambda fake=fake, job=job: fake.workload(job.job_id))
        fake.admit(job.job_id)
        await h.status(job.job_id, JobStatus.RUNNING)
        await h.runtime.stop(job.job_id)
        stopped = await h.status(job.job_id, JobStatus.STOPPED)
        assert stopped.pods and all(p.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED) for p in stopped.pods)
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
        await fake.wait_for(lambda fake=fake, job=job: fake.job(job.job_id) is None and fake.workload(job.job_id) is None)


async def test_a_kueue_job_stopped_while_queued_is_never_admitted(tmp_path):
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await fake.wait_for(lambda fake=fake, job=job: fake.workload(job.job_id))
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
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP, priority=100)
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.QUEUED)
        await fake.wait_for(lambda fake=fake, job=job: fake.events_for(job.job_id, kind="Job"))
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
        async with queued_harness(tmp_path / queueing, queueing, **options) as h:
            job = h.job(LOOP, replicas=2)
            await h.runtime.submit(job)
            if queueing == "kueue":
                await h.fake.wait_for(lambda h=h, job_id=job.job_id: h.fake.workload(job_id))
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
                assert _allowed(rules, g, resource, verbs, "/namespaces/" not in request.path), (
                    request, g, resource, verbs)


def last_update(h: Harness, job_id: str) -> JobUpdate:
    """The runtime's latest word on the job's status (an empty update before the first)."""
    return next((u for u in reversed(h.updates) if u.job_id == job_id and u.status is not None),
                JobUpdate(job_id=job_id))


async def until(h: Harness, predicate, timeout: float = 10):
    async with asyncio.timeout(timeout):
        while not predicate():
            await h.next_update()


# The flavor assigner's messages (kueue v0.19.2 pkg/scheduler/flavorassigner/flavorassigner.go).
UNUSED = ("couldn't assign flavors to pod set main: insufficient unused quota for "
          "nvidia.com/gpu in flavor default-flavor, 2 more needed")
MAXIMUM = ("couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in "
           "flavor default-flavor, previously considered podsets requests (0) + current podset "
           "request (16) > maximum capacity (8)")
AFFINITY = "couldn't assign flavors to pod set main: flavor a100 doesn't match node affinity"


async def test_why_a_kueue_job_waits(tmp_path):
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await fake.wait_for(lambda fake=fake, job=job: fake.workload(job.job_id))
        for reason, message, code in (
            ("Pending", UNUSED, "WAITING_FOR_QUOTA"),  # v0.19's default: the message says why
            ("Pending", MAXIMUM, "EXCEEDS_QUOTA"),
            ("WaitingForQuota", UNUSED, "WAITING_FOR_QUOTA"),  # UnadmittedWorkloadsObservability
            ("ExceedsMaxQuota", MAXIMUM, "EXCEEDS_QUOTA"),
            ("NoMatchingFlavor", AFFINITY, "NO_MATCHING_FLAVOR"),
        ):
            fake.kueue_hold(job.job_id, reason, message)
            await until(h, lambda r=reason, m=message, h=h, job=job: (
                (u := last_update(h, job.job_id)).pending_reason is not None
                and u.reason == f"{r}: {m}"))
            update = last_update(h, job.job_id)
            assert update.status is JobStatus.QUEUED
            assert (update.pending_reason.code, update.pending_reason.message) == (
                code, f"{reason}: {message}")
        # Kueue's Warning events on the Workload are the job's events.
        await until(h, lambda h=h, job=job: {("Pending", UNUSED), ("ExceedsMaxQuota", MAXIMUM)} <= {
            (e.reason, e.message) for u in h.updates if u.job_id == job.job_id for e in u.events})
        warnings = [e for u in h.updates if u.job_id == job.job_id for e in u.events
                    if e.reason == "NoMatchingFlavor"]
        assert warnings and warnings[0].type.value == "Warning"
        # Admitted: it runs and the reason goes.
        fake.admit(job.job_id)
        running = await h.status(job.job_id, JobStatus.RUNNING)
        assert running.pending_reason is None and running.reason is None
        await until(h, lambda h=h, job=job: any(e.reason == "QuotaReserved" for u in h.updates
                                   if u.job_id == job.job_id for e in u.events))


async def test_a_missing_workload_priority_class_is_the_reason(tmp_path):
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP, priority=100)  # the pool maps it to the class "urgent"
        await h.runtime.submit(job)
        await until(h, lambda h=h, job=job: (u := last_update(h, job.job_id)).pending_reason is not None
                    and u.pending_reason.code == "WORKLOAD_PRIORITY_CLASS_NOT_FOUND")
        update = last_update(h, job.job_id)
        assert update.status is JobStatus.QUEUED
        assert update.reason == 'WorkloadPriorityClass "urgent" not found'
        assert fake.workload(job.job_id) is None
        assert any(e.reason == "WorkloadPriorityClassNotFound" and e.type.value == "Warning"
                   for u in h.updates if u.job_id == job.job_id for e in u.events)
        # The class is created: Kueue makes the Workload, and the job waits for admission.
        fake.kueue.add_priority_class("urgent", 100)
        await until(h, lambda h=h, job=job: (u := last_update(h, job.job_id)).pending_reason is not None
                    and u.pending_reason.code == "WAITING_FOR_ADMISSION")
        assert fake.workload(job.job_id)["spec"]["priority"] == 100
        await h.runtime.delete(job.job_id)


async def test_volcano_places_a_gang_whole_or_not_at_all(tmp_path):
    async with queued_harness(tmp_path, "volcano", volcano=True,
                                  node_allocatable={"nvidia.com/gpu": 3}) as h:
        fake = h.fake
        job = h.job(LOOP, replicas=4, resources=Resources(gpu=1))
        await h.runtime.submit(job)
        assert fake.job(job.job_id)["metadata"]["annotations"][
            "scheduling.volcano.sh/group-min-member"] == "4"
        await until(h, lambda: (u := last_update(h, job.job_id)).pending_reason is not None
                    and u.pending_reason.code == "GANG_NOT_READY" and u.status is JobStatus.QUEUED)
        update = last_update(h, job.job_id)
        assert update.status is JobStatus.QUEUED
        assert update.pending_reason.code == "GANG_NOT_READY"
        assert update.reason.startswith("NotEnoughResources: 4/4 tasks in gang unschedulable")
        assert "Insufficient nvidia.com/gpu" in update.reason
        await settled(h)
        # Three GPUs for four replicas: not one of them is placed.
        pods = fake.pods_of(job.job_id)
        assert len(pods) == 4 and not any(p["spec"].get("nodeName") for p in pods)
        [podgroup] = fake.store.list("podgroups")
        assert podgroup["spec"]["minMember"] == 4
        assert any(e.reason == "Unschedulable" and e.type.value == "Warning"
                   for u in h.updates if u.job_id == job.job_id for e in u.events)
        # A fourth GPU: the whole gang starts.
        fake.volcano.allocatable["nvidia.com/gpu"] = 4
        fake.volcano.wake.set()
        running = await h.status(job.job_id, JobStatus.RUNNING)
        assert running.pending_reason is None
        await fake.wait_for(lambda fake=fake, job=job: all(p["spec"].get("nodeName") for p in fake.pods_of(job.job_id)))


async def test_a_kueue_pool_on_a_cluster_without_kueue_says_so_on_stop(tmp_path):
    from app.domain.errors import Conflict

    async with queued_harness(tmp_path, "kueue") as h:  # the fake runs no Kueue
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await until(h, lambda: last_update(h, job.job_id).pending_reason is not None
                    and last_update(h, job.job_id).pending_reason.code == "QUEUEING_NOT_INSTALLED")
        assert last_update(h, job.job_id).reason == (
            "the cluster serves no workloads.kueue.x-k8s.io/v1beta2: is Kueue v0.19 installed?")
        try:
            await h.runtime.stop(job.job_id)
        except Conflict as error:
            assert "serves no workloads.kueue.x-k8s.io/v1beta2" in error.message
        else:
            raise AssertionError("the stop claimed success without Kueue")
        await h.runtime.delete(job.job_id)


async def test_kueue_v0_19_logs_a_missing_priority_class_only(tmp_path):
    # Kueue v0.19.2 writes no event for it: the reason names the class to check.
    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        h.fake.kueue.priority_class_events = False
        job = h.job(LOOP, priority=100)
        await h.runtime.submit(job)
        await until(h, lambda: last_update(h, job.job_id).pending_reason is not None)
        update = last_update(h, job.job_id)
        assert update.pending_reason.code == "SUBMITTING"
        assert update.reason == ("Kueue has not created the job's Workload yet; is there a "
                                 "WorkloadPriorityClass 'urgent'?")
        await h.runtime.delete(job.job_id)


async def test_a_kueue_stop_kept_through_an_outage_is_applied_later(tmp_path):
    from app.domain.errors import RuntimeUnavailable

    async with queued_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP)
        await h.runtime.submit(job)
        await fake.wait_for(lambda: fake.workload(job.job_id))
        fake.admit(job.job_id)
        await h.status(job.job_id, JobStatus.RUNNING)
        await fake.go_offline()
        try:
            await h.runtime.stop(job.job_id)
        except RuntimeUnavailable as error:
            assert "the stop is kept" in error.message
        else:
            raise AssertionError("the stop claimed success through the outage")
        assert fake.workload(job.job_id)["spec"]["active"] is True
        # The cluster answers again: the runtime lists anew and applies the stop it kept.
        await fake.go_online()
        await h.status(job.job_id, JobStatus.STOPPED, timeout=20)
        await settled(h)
        assert live_pods(fake, job.job_id) == []
        assert fake.workload(job.job_id)["spec"]["active"] is False


async def test_a_volcano_pool_on_a_cluster_without_volcano_says_so(tmp_path):
    async with queued_harness(tmp_path, "volcano") as h:  # no Volcano: its pods stay Pending
        job = h.job(LOOP, replicas=2)
        await h.runtime.submit(job)
        await until(h, lambda: (u := last_update(h, job.job_id)).pending_reason is not None
                    and u.pending_reason.code == "QUEUEING_NOT_INSTALLED")
        update = last_update(h, job.job_id)
        assert update.status is JobStatus.QUEUED
        assert update.reason == ("the cluster serves no podgroups.scheduling.volcano.sh/v1beta1: "
                                 "is Volcano v1.16 installed?")
        await h.runtime.delete(job.job_id)
