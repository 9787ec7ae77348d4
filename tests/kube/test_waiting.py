"""Issue 13 on Kubernetes pools, against the fake (tests/k8sfake): why a job waits
(UNSCHEDULABLE, HELD, SUBMITTING, Kueue's reasons), where it stands in its Kueue LocalQueue
(the visibility API), what the largest node can give, and steering a waiting job (hold,
release, re-order) through Kueue's own mechanisms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain.errors import Conflict
from app.domain.jobs import Job, JobStatus, Resources
from app.domain.pools import ResourcePool
from app.runtime.kubernetes import KubernetesRuntime
from app.runtime.kubernetes.nodes import parse_quantity
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.test_queueing import LOOP, last_update, settled, until
from tests.kube.test_runtime import Harness

GPU_NODE = {"name": "gpu-1", "allocatable": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}}
# kube-scheduler's FitError + DefaultPreemption message (pkg/scheduler/framework/types.go).
NO_GPU = ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
          "available: 1 No preemption victims found for incoming pod.")


@asynccontextmanager
async def pool_harness(tmp_path: Path, queueing: str = "none", options: dict | None = None,
                       **fake_options: Any) -> AsyncIterator[Harness]:
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    async with FakeKubernetes.running(delays=Delays(), **fake_options) as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        pool = ResourcePool(id="p", runtime="kubernetes", options={
            "kubeconfig": str(kubeconfig), "queueing": queueing,
            "priorityClasses": [{"name": "urgent", "value": 100}], **(options or {})})
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


async def eventually(ask: Callable[[], Awaitable[Any]], expected: Any,
                     next_change: Callable[[], asyncio.Event], timeout: float = 10) -> None:
    """Ask again at each change the runtime sees until the answer is `expected`."""
    async with asyncio.timeout(timeout):
        while True:
            changed = next_change()
            if (got := await ask()) == expected:
                return
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                raise AssertionError(f"still {got!r}, expected {expected!r}") from None


def reason_of(h: Harness, job_id: str) -> tuple[str, str] | None:
    update = last_update(h, job_id)
    reason = update.pending_reason
    return (reason.code, reason.message) if reason is not None else None


# -- UNSCHEDULABLE ------------------------------------------------------------------------

async def test_a_pod_no_node_can_take_is_unschedulable_with_the_schedulers_message(tmp_path):
    async with pool_harness(tmp_path, nodes=[GPU_NODE]) as h:
        job = h.job(LOOP, resources=Resources(gpu=8))
        await h.runtime.submit(job)
        await until(h, lambda: reason_of(h, job.job_id) == ("UNSCHEDULABLE", NO_GPU))
        first = last_update(h, job.job_id)
        assert first.status is JobStatus.PENDING
        since = first.pending_reason.since
        # The scheduler's Warning event is one of the job's events.
        await until(h, lambda: any(e.reason == "FailedScheduling" and e.type.value == "Warning"
                                   and e.message.endswith(NO_GPU)
                                   for u in h.updates if u.job_id == job.job_id for e in u.events))
        # Another node joins, without GPUs: a new message, the same code, the same since.
        h.fake.add_node("cpu-1", {"cpu": "64", "memory": "256Gi"})
        two = NO_GPU.replace("0/1", "0/2").replace("1 Insufficient", "2 Insufficient").replace(
            "1 No preemption", "2 No preemption")
        await until(h, lambda: reason_of(h, job.job_id) == ("UNSCHEDULABLE", two))
        assert last_update(h, job.job_id).pending_reason.since == since
        # The GPU node gets 8 GPUs (its device plugin registers more): the pod is placed.
        h.fake.set_allocatable("gpu-1", {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "8"})
        running = await h.status(job.job_id, JobStatus.RUNNING)
        assert running.pending_reason is None
        assert h.fake.pods_of(job.job_id)[0]["spec"]["nodeName"] == "gpu-1"
        await h.runtime.delete(job.job_id)


# -- largest node -------------------------------------------------------------------------

def test_kubernetes_quantities_are_parsed_as_the_api_writes_them():
    assert parse_quantity("3800m") == Decimal("3.8")
    assert parse_quantity("62Gi") == 62 * 2 ** 30
    assert parse_quantity("129538Ki") == 129538 * 1024
    assert parse_quantity("1.5") == Decimal("1.5")
    assert parse_quantity("8") == 8
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("2k") == 2000
    assert parse_quantity("500M") == 500_000_000
    for bad in ("", "Gi", "1.2.3", "12 Gi", "1Q"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


async def test_the_largest_node_is_read_from_the_cluster_and_follows_its_changes(tmp_path):
    nodes = [{"name": "cpu-1", "allocatable": {"cpu": "63900m", "memory": "251Gi"}},
             {"name": "gpu-1", "allocatable": {"cpu": "15", "memory": "62Gi",
                                               "nvidia.com/gpu": "4"},
              "labels": {"nvidia.com/gpu.present": "true"}}]
    async with pool_harness(tmp_path, nodes=nodes) as h:
        runtime = h.runtime
        # The most any one node gives of each resource (not one node's all).
        assert await runtime.largest_node() == Resources(cpus=63.9, memory_gib=251.0, gpu=4)
        lists = len(h.fake.calls("GET", "/api/v1/nodes"))
        # Asked again: the cached answer, no call.
        assert await runtime.largest_node() == Resources(cpus=63.9, memory_gib=251.0, gpu=4)
        assert len(h.fake.calls("GET", "/api/v1/nodes")) == lists
        # A bigger GPU node joins: seen through the node watch.
        h.fake.add_node("gpu-2", {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": "8"},
                        labels={"nvidia.com/gpu.present": "true"})
        await eventually(runtime.largest_node, Resources(cpus=96.0, memory_gib=1024.0, gpu=8),
                         runtime.next_node_change)
        watches = [r for r in h.fake.calls("GET", "/api/v1/nodes") if r.param("watch")]
        assert watches and all(r.status == 200 for r in watches)


async def test_the_largest_node_counts_only_the_nodes_of_the_pools_node_selector(tmp_path):
    nodes = [{"name": "cpu-1", "allocatable": {"cpu": "64", "memory": "256Gi"}},
             {"name": "gpu-1", "allocatable": {"cpu": "16", "memory": "64Gi",
                                               "nvidia.com/gpu": "8"},
              "labels": {"nvidia.com/gpu.present": "true"}}]
    options = {"nodeSelector": {"nvidia.com/gpu.present": "true"}}
    async with pool_harness(tmp_path, options=options, nodes=nodes) as h:
        assert await h.runtime.largest_node() == Resources(cpus=16.0, memory_gib=64.0, gpu=8)


async def test_without_rbac_for_nodes_the_largest_node_is_unknown(tmp_path):
    async with FakeKubernetes.running(delays=Delays(), nodes=[GPU_NODE]) as fake:
        fake.forbid("list", "nodes")
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        runtime = KubernetesRuntime(
            ResourcePool(id="p", runtime="kubernetes", options={"kubeconfig": str(kubeconfig)}),
            archive_dir=tmp_path / "archive")
        await runtime.start([])
        try:
            assert await runtime.largest_node() is None
            [denied] = fake.calls("GET", "/api/v1/nodes")  # not retried in a loop
            assert denied.status == 403
            assert await runtime.largest_node() is None
            assert len(fake.calls("GET", "/api/v1/nodes")) == 1
        finally:
            await runtime.close()


async def test_nodes_are_listed_page_by_page(tmp_path, monkeypatch):
    from app.runtime.kubernetes import nodes as node_watch

    monkeypatch.setattr(node_watch, "PAGE", 2)
    many = [{"name": f"n-{i}", "allocatable": {"cpu": str(i + 1), "memory": "1Gi"}}
            for i in range(5)]
    async with pool_harness(tmp_path, nodes=many) as h:
        assert await h.runtime.largest_node() == Resources(cpus=5.0, memory_gib=1.0, gpu=0)
        pages = [r for r in h.fake.calls("GET", "/api/v1/nodes")
                 if r.param("limit") == "2"]
        assert len(pages) == 3
        assert [bool(r.param("continue")) for r in pages] == [False, True, True]


async def test_a_cluster_without_nodes_listed_has_no_largest_node(tmp_path):
    async with pool_harness(tmp_path) as h:  # the fake registers no node
        assert await h.runtime.largest_node() is None


# -- Kueue: positions, hold, release, re-order -------------------------------------------

async def kueue_jobs(h: Harness, count: int, **spec: Any) -> list[Job]:
    """`count` jobs whose Workloads are made one (virtual) second apart: Kueue orders equal
    priorities by creation time, to the second."""
    jobs = []
    for _ in range(count):
        job = h.job(LOOP, **spec)
        await h.runtime.submit(job)
        await h.fake.wait_for(lambda job=job: h.fake.workload(job.job_id))
        await h.fake.advance(1)
        jobs.append(job)
    return jobs


def positions_of(h: Harness, jobs: list[Job]) -> Callable[[], Awaitable[Any]]:
    return lambda: h.runtime.queue_positions(jobs)


async def test_kueue_positions_come_from_the_visibility_api(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:
        h.fake.kueue.visibility = True
        a, b, c = await kueue_jobs(h, 3)
        jobs = [a, b, c]
        await eventually(positions_of(h, jobs), {a.job_id: 1, b.job_id: 2, c.job_id: 3},
                         h.runtime.next_queue_change)
        [call] = h.fake.calls("GET", "/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/default/"
                                     "localqueues/default/pendingworkloads")[-1:]
        assert call.param("limit") == "1000"
        # Asked again with nothing changed: no new call.
        calls = len(h.fake.requests)
        assert await h.runtime.queue_positions(jobs) == {a.job_id: 1, b.job_id: 2, c.job_id: 3}
        assert len(h.fake.requests) == calls
        # The first is admitted: it is no longer waiting, the others move up.
        h.fake.admit(a.job_id)
        await eventually(positions_of(h, jobs), {b.job_id: 1, c.job_id: 2},
                         h.runtime.next_queue_change)
        await h.status(a.job_id, JobStatus.RUNNING)


async def test_without_the_visibility_api_kueue_jobs_have_no_position(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:  # visibility not served
        [a] = await kueue_jobs(h, 1)
        assert await h.runtime.queue_positions([a]) == {}
        [call] = h.fake.calls("GET", "/apis/visibility.kueue.x-k8s.io/")
        assert call.status == 404
        # The absence is remembered: not asked again at once.
        assert await h.runtime.queue_positions([a]) == {}
        assert len(h.fake.calls("GET", "/apis/visibility.kueue.x-k8s.io/")) == 1


async def test_a_local_queue_kueue_does_not_know_gives_no_position(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:
        h.fake.kueue.visibility = True
        h.fake.kueue.local_queues = {"team-a"}
        [a] = await kueue_jobs(h, 1)  # in the LocalQueue "default"
        assert await h.runtime.queue_positions([a]) == {}
        [call] = h.fake.calls("GET", "/apis/visibility.kueue.x-k8s.io/")
        assert call.status == 404
        # Not taken for an absent API: asked again (after a Workload change).
        h.fake.kueue.local_queues = {"team-a", "default"}
        h.fake.kueue_hold(a.job_id, "Pending", "couldn't assign flavors")
        await eventually(positions_of(h, [a]), {a.job_id: 1}, h.runtime.next_queue_change)


async def test_a_held_kueue_job_is_deactivated_and_released_in_its_place(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        fake.kueue.visibility = True
        a, b = await kueue_jobs(h, 2)
        await h.runtime.hold(a)
        [patch] = fake.calls("PATCH", "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/workloads/")
        assert patch.body == {"spec": {"active": False}}
        assert patch.headers["Content-Type"] == "application/merge-patch+json"
        assert fake.job(a.job_id)["metadata"]["annotations"]["jobgraph.io/held"] == "true"
        await until(h, lambda: reason_of(h, a.job_id) is not None
                    and reason_of(h, a.job_id)[0] == "HELD")
        assert last_update(h, a.job_id).status is JobStatus.QUEUED
        # Kueue took it out of the queue: b is first, a has no position, and it is never
        # admitted while held.
        await eventually(positions_of(h, [a, b]), {b.job_id: 1}, h.runtime.next_queue_change)
        workload = fake.admit(a.job_id)
        assert workload["spec"]["active"] is False
        evicted = next(c for c in workload["status"]["conditions"] if c["type"] == "Evicted")
        assert (evicted["status"], evicted["reason"]) == ("True", "Deactivated")
        await settled(h)
        assert fake.job(a.job_id)["spec"]["suspend"] is True and fake.pods_of(a.job_id) == []
        # Released: back first (its Workload is the older), waiting for admission again.
        await h.runtime.release(a)
        assert fake.calls("PATCH", "/apis/kueue.x-k8s.io/")[-1].body == {"spec": {"active": True}}
        assert "jobgraph.io/held" not in (fake.job(a.job_id)["metadata"].get("annotations") or {})
        await eventually(positions_of(h, [a, b]), {a.job_id: 1, b.job_id: 2},
                         h.runtime.next_queue_change)
        assert fake.workload(a.job_id)["spec"]["active"] is True
        await until(h, lambda: reason_of(h, a.job_id) is not None
                    and reason_of(h, a.job_id)[0] != "HELD")
        fake.admit(a.job_id)
        await h.status(a.job_id, JobStatus.RUNNING)


async def test_a_job_held_before_kueue_made_its_workload_gets_it_deactivated(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        job = h.job(LOOP, priority=100)  # its class "urgent" does not exist yet: no Workload
        await h.runtime.submit(job)
        await until(h, lambda: reason_of(h, job.job_id) is not None
                    and reason_of(h, job.job_id)[0] == "WORKLOAD_PRIORITY_CLASS_NOT_FOUND")
        await h.runtime.hold(job)
        await until(h, lambda: reason_of(h, job.job_id) is not None
                    and reason_of(h, job.job_id)[0] == "HELD")
        fake.kueue.add_priority_class("urgent", 100)  # Kueue makes the Workload, active
        await fake.wait_for(lambda: (w := fake.workload(job.job_id)) is not None
                            and w["spec"]["active"] is False)
        fake.admit(job.job_id)
        await settled(h)
        assert fake.pods_of(job.job_id) == []
        assert last_update(h, job.job_id).pending_reason.code == "HELD"


async def test_reordering_a_kueue_job_moves_its_workload(tmp_path):
    async with pool_harness(tmp_path, "kueue", kueue=True) as h:
        fake = h.fake
        fake.kueue.visibility = True
        fake.kueue.add_priority_class("urgent", 100)
        a, b = await kueue_jobs(h, 2)
        await eventually(positions_of(h, [a, b]), {a.job_id: 1, b.job_id: 2},
                         h.runtime.next_queue_change)
        # b gets priority 100: the pool maps it to the class "urgent"; Kueue gives the
        # Workload that class and its value, and b goes ahead of a.
        await h.runtime.reorder(_respec(b, priority=100))
        patch = fake.calls("PATCH", f"/apis/batch/v1/namespaces/default/jobs/{b.job_id}")[-1]
        assert patch.body == {"metadata": {"labels": {"kueue.x-k8s.io/priority-class": "urgent"}}}
        await fake.wait_for(lambda: fake.workload(b.job_id)["spec"]["priority"] == 100)
        assert fake.workload(b.job_id)["spec"]["priorityClassRef"]["name"] == "urgent"
        await eventually(positions_of(h, [a, b]), {b.job_id: 1, a.job_id: 2},
                         h.runtime.next_queue_change)
        await until(h, lambda: any(e.reason == "UpdatedWorkload" for u in h.updates
                                   if u.job_id == b.job_id for e in u.events))
        # a moves to another LocalQueue: Kueue moves its Workload there.
        moved = _respec(a, queue="team-b")
        await h.runtime.reorder(moved)
        await fake.wait_for(lambda: fake.workload(a.job_id)["spec"]["queueName"] == "team-b")
        await eventually(positions_of(h, [moved]), {moved.job_id: 1}, h.runtime.next_queue_change)
        # Kueue does not let a Job lose its class: a Conflict that says so.
        with pytest.raises(Conflict, match="does not let a Job lose its class"):
            await h.runtime.reorder(_respec(b, priority=0))
        # Once admitted (running), Kueue's webhook refuses a queue change.
        fake.admit(b.job_id)
        await h.status(b.job_id, JobStatus.RUNNING)
        with pytest.raises(Conflict, match='admission webhook "vjob.kb.io" denied the request'):
            await h.runtime.reorder(_respec(b, priority=100, queue="team-b"))
        assert fake.job(b.job_id)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"


def _respec(job: Job, **changes: Any) -> Job:
    from dataclasses import replace

    return replace(job, spec=replace(job.spec, **changes))


# -- pools without Kueue ------------------------------------------------------------------

async def test_a_held_job_on_a_plain_pool_is_suspended_until_released(tmp_path):
    async with pool_harness(tmp_path, nodes=[GPU_NODE]) as h:
        fake = h.fake
        job = h.job(LOOP, resources=Resources(gpu=8))  # waits: no node has 8 GPUs
        await h.runtime.submit(job)
        await until(h, lambda: reason_of(h, job.job_id) == ("UNSCHEDULABLE", NO_GPU))
        await h.runtime.hold(job)
        await until(h, lambda: reason_of(h, job.job_id) is not None
                    and reason_of(h, job.job_id)[0] == "HELD")
        assert last_update(h, job.job_id).status is JobStatus.QUEUED
        await fake.wait_for(lambda: not [p for p in fake.pods_of(job.job_id)
                                         if not p["metadata"].get("deletionTimestamp")])
        assert fake.job(job.job_id)["spec"]["suspend"] is True
        await h.runtime.release(job)
        assert fake.job(job.job_id)["spec"]["suspend"] is False
        await until(h, lambda: reason_of(h, job.job_id) == ("UNSCHEDULABLE", NO_GPU))
        with pytest.raises(Conflict, match="pod template"):
            await h.runtime.reorder(_respec(job, priority=100))
        # A stopped job is never resumed by a (late) release.
        await h.runtime.stop(job.job_id)
        with pytest.raises(Conflict, match="being stopped"):
            await h.runtime.release(job)
        await h.status(job.job_id, JobStatus.STOPPED)
        assert fake.job(job.job_id)["spec"]["suspend"] is True


async def test_volcano_reasons_gang_not_ready(tmp_path):
    async with pool_harness(tmp_path, "volcano", volcano=True,
                            node_allocatable={"nvidia.com/gpu": 1}) as h:
        job = h.job(LOOP, replicas=2, resources=Resources(gpu=1))
        await h.runtime.submit(job)
        await until(h, lambda: reason_of(h, job.job_id) is not None
                    and reason_of(h, job.job_id)[0] == "GANG_NOT_READY"
                    and last_update(h, job.job_id).status is JobStatus.QUEUED)
        code, message = reason_of(h, job.job_id)
        assert message.startswith("NotEnoughResources: 2/2 tasks in gang unschedulable")
        # Each pod's FailedScheduling does not hide the gang's reason.
        await settled(h)
        assert reason_of(h, job.job_id)[0] == "GANG_NOT_READY"
        assert await h.runtime.queue_positions([job]) == {}
        # Held: the Job is suspended, its pods go (the PodGroup stays); released: the gang
        # waits again.
        await h.runtime.hold(job)
        await until(h, lambda: reason_of(h, job.job_id) is not None
                    and reason_of(h, job.job_id)[0] == "HELD")
        await h.fake.wait_for(lambda: not [p for p in h.fake.pods_of(job.job_id)
                                           if not p["metadata"].get("deletionTimestamp")])
        await h.runtime.release(job)
        await until(h, lambda: (reason_of(h, job.job_id) or ("",))[0] == "GANG_NOT_READY"
                    and len([p for p in h.fake.pods_of(job.job_id)
                             if not p["metadata"].get("deletionTimestamp")]) == 2)
        with pytest.raises(Conflict, match="pod template"):
            await h.runtime.reorder(_respec(job, queue="other"))
        await h.runtime.delete(job.job_id)
