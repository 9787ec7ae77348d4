"""The fake's Nodes, default scheduler fit, RBAC denials, Kueue's visibility API and Job
webhook, through the unmodified client (tests/k8sfake/nodes.py, kueue.py)."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes
from tests.k8sfake_contract.test_queueing import KUEUE, clients, sleeping

NODES = [{"name": "b-gpu", "allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "2"},
          "labels": {"accelerator": "a100"}},
         {"name": "a-cpu", "allocatable": {"cpu": "4", "memory": "8Gi"}}]
PENDING = ("/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/default/localqueues/{lq}/"
           "pendingworkloads")


def gpu_job(name: str, gpus: int, **spec) -> dict:
    body = sleeping(name, **spec)
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}
    return body


async def test_nodes_are_listed_watched_and_read_only() -> None:
    async with clients(nodes=NODES) as (fake, api):
        core = client.CoreV1Api(api)
        listing = await core.list_node()
        assert [n.metadata.name for n in listing.items] == ["a-cpu", "b-gpu"]
        gpu = listing.items[1]
        assert gpu.status.allocatable["nvidia.com/gpu"] == "2"
        assert gpu.metadata.labels["accelerator"] == "a100"
        assert gpu.status.node_info.kubelet_version  # every required field deserialises
        assert (await core.read_node("a-cpu")).status.allocatable["memory"] == "8Gi"
        with pytest.raises(ApiException) as error:
            await core.read_node("nope")
        assert error.value.status == 404
        assert json.loads(error.value.body)["message"] == 'nodes "nope" not found'
        with pytest.raises(ApiException) as error:
            await core.delete_node("a-cpu")
        assert error.value.status == 405
        # A watch from the list's resourceVersion sees a new node and an allocatable change.
        w = watch.Watch()
        stream = w.stream(core.list_node, resource_version=listing.metadata.resource_version)
        fake.add_node("c-new", {"cpu": "2", "memory": "4Gi"})
        fake.set_allocatable("b-gpu", {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"})
        seen = []
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                break
        await w.close()
        assert seen == [("ADDED", "c-new"), ("MODIFIED", "b-gpu")]
        assert (await core.list_node(field_selector="metadata.name=c-new")).items[0].metadata.name \
            == "c-new"


async def test_the_scheduler_places_pods_on_nodes_that_fit_or_says_why_not() -> None:
    async with clients(nodes=NODES) as (fake, api):
        batch = client.BatchV1Api(api)
        await batch.create_namespaced_job("default", gpu_job("fits", 2))
        await batch.create_namespaced_job("default", gpu_job("waits", 1))
        await fake.wait_for(lambda: [p for p in fake.pods_of("fits") if p["spec"].get("nodeName")])
        assert fake.pods_of("fits")[0]["spec"]["nodeName"] == "b-gpu"
        # Both GPUs of the one GPU node are taken: kube-scheduler's FitError message.
        message = ("0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 "
                   "nodes are available: 2 No preemption victims found for incoming pod.")
        await fake.wait_for(lambda: any(
            e.get("reason") == "FailedScheduling" for p in fake.pods_of("waits")
            for e in fake.events_for(p["metadata"]["name"], kind="Pod")))
        [pod] = fake.pods_of("waits")
        [event] = [e for e in fake.events_for(pod["metadata"]["name"], kind="Pod")
                   if e["reason"] == "FailedScheduling"]
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        assert cond["message"] == event["message"] == message
        assert event["type"] == "Warning" and event["reportingComponent"] == "default-scheduler"
        # The first job goes: the waiting pod is placed at that change.
        await batch.delete_namespaced_job("fits", "default", propagation_policy="Background")
        await fake.wait_for(lambda: fake.pods_of("waits")[0]["spec"].get("nodeName") == "b-gpu")


async def test_a_node_selector_no_node_matches() -> None:
    async with clients(nodes=NODES) as (fake, api):
        body = sleeping("picky")
        body["spec"]["template"]["spec"]["nodeSelector"] = {"accelerator": "h100"}
        await client.BatchV1Api(api).create_namespaced_job("default", body)
        await fake.wait_for(lambda: any(c.get("reason") == "Unschedulable"
                                        for p in fake.pods_of("picky")
                                        for c in p["status"].get("conditions") or []))
        cond = next(c for c in fake.pods_of("picky")[0]["status"]["conditions"]
                    if c["type"] == "PodScheduled")
        assert cond["message"] == (
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")


async def test_rbac_denials_answer_the_authorizers_403(fake: FakeKubernetes,
                                                      core: client.CoreV1Api) -> None:
    fake.forbid("list", "nodes")
    with pytest.raises(ApiException) as error:
        await core.list_node()
    assert error.value.status == 403
    body = json.loads(error.value.body)
    assert body["reason"] == "Forbidden" and body["details"] == {"kind": "nodes"}
    assert body["message"] == ('nodes is forbidden: User "system:serviceaccount:jobgraph:'
                               'jobgraph" cannot list resource "nodes" in API group "" at the '
                               'cluster scope')
    await core.list_namespaced_pod("default")  # only what was denied


async def _get(api: client.ApiClient, path: str, **query) -> tuple[int, dict]:
    response = await api.call_api(path, "GET", query_params=list(query.items()),
                                  header_params={"Accept": "application/json"},
                                  auth_settings=["BearerToken"], _return_http_data_only=True,
                                  _preload_content=False)
    status, body = response.status, json.loads(await response.read())
    response.release()
    return status, body


async def test_kueue_visibility_lists_a_local_queues_pending_workloads_in_order() -> None:
    async with clients(kueue=True) as (fake, api):
        status, body = await _get(api, PENDING.format(lq="default"))
        assert status == 404  # off by default: no APIService for the group
        assert body["message"] == "the server could not find the requested resource"
        fake.kueue.visibility = True
        fake.kueue.add_priority_class("high", 1000)
        batch = client.BatchV1Api(api)
        for name, labels in (("first", {}), ("second", {}),
                             ("urgent", {"kueue.x-k8s.io/priority-class": "high"}),
                             ("other", {})):
            queue = "team-b" if name == "other" else "default"
            await batch.create_namespaced_job("default", sleeping(
                name, labels={"kueue.x-k8s.io/queue-name": queue, **labels}))
            await fake.wait_for(lambda name=name: fake.workload(name))
            await fake.advance(1)
        status, body = await _get(api, PENDING.format(lq="default"))
        assert status == 200 and body["kind"] == "PendingWorkloadsSummary"
        owners = [i["metadata"]["ownerReferences"][0]["name"] for i in body["items"]]
        assert owners == ["urgent", "first", "second"]
        assert [i["positionInLocalQueue"] for i in body["items"]] == [0, 1, 2]
        assert [i["positionInClusterQueue"] for i in body["items"]] == [0, 1, 2]
        assert body["items"][0]["priority"] == 1000
        assert body["items"][0]["localQueueName"] == "default"
        status, body = await _get(api, PENDING.format(lq="team-b"))
        assert [(i["positionInLocalQueue"], i["positionInClusterQueue"]) for i in body["items"]] \
            == [(0, 3)]
        status, body = await _get(api, PENDING.format(lq="default"), offset=1, limit=1)
        assert [i["metadata"]["ownerReferences"][0]["name"] for i in body["items"]] == ["first"]
        assert body["items"][0]["positionInLocalQueue"] == 1
        # Admitted or inactive Workloads are not pending.
        fake.admit("urgent")
        wl = fake.workload("first")
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(
            *KUEUE, "default", "workloads", wl["metadata"]["name"], {"spec": {"active": False}},
            _content_type="application/merge-patch+json")
        status, body = await _get(api, PENDING.format(lq="default"))
        assert [i["metadata"]["ownerReferences"][0]["name"] for i in body["items"]] == ["second"]
        fake.kueue.local_queues = {"team-b"}
        status, body = await _get(api, PENDING.format(lq="default"))
        assert status == 404
        assert body["message"] == 'localqueue.visibility.kueue.x-k8s.io "default" not found'
        assert body["details"]["name"] == "default"


async def test_kueues_job_webhook_rules_for_the_queue_and_priority_class_labels() -> None:
    async with clients(kueue=True) as (fake, api):
        fake.kueue.add_priority_class("high", 1000)
        fake.kueue.add_priority_class("low", 10)
        batch = client.BatchV1Api(api)
        await batch.create_namespaced_job("default", sleeping(
            "j", labels={"kueue.x-k8s.io/queue-name": "default",
                         "kueue.x-k8s.io/priority-class": "low"}))
        await fake.wait_for(lambda: fake.workload("j"))
        # Suspended: the queue and the class may change, and Kueue carries them over.
        await batch.patch_namespaced_job("j", "default", {"metadata": {"labels": {
            "kueue.x-k8s.io/queue-name": "team-b", "kueue.x-k8s.io/priority-class": "high"}}})
        await fake.wait_for(lambda: fake.workload("j")["spec"]["queueName"] == "team-b"
                            and fake.workload("j")["spec"]["priority"] == 1000)
        assert fake.workload("j")["spec"]["priorityClassRef"]["name"] == "high"
        assert any(e["reason"] == "UpdatedWorkload" for e in fake.events_for("j", kind="Job"))
        # A class cannot be removed.
        with pytest.raises(ApiException) as error:
            await batch.patch_namespaced_job("j", "default", {"metadata": {"labels": {
                "kueue.x-k8s.io/priority-class": None}}})
        assert error.value.status == 403
        assert json.loads(error.value.body)["message"] == (
            'admission webhook "vjob.kb.io" denied the request: metadata.labels[kueue.x-k8s.io/'
            'priority-class]: Invalid value: "": WorkloadPriorityClass cannot be removed from a '
            'workload')
        # Admitted and running: the queue is immutable.
        fake.admit("j")
        await fake.wait_for(lambda: fake.job("j")["spec"]["suspend"] is False)
        with pytest.raises(ApiException) as error:
            await batch.patch_namespaced_job("j", "default", {"metadata": {"labels": {
                "kueue.x-k8s.io/queue-name": "default"}}})
        assert error.value.status == 403
        assert json.loads(error.value.body)["message"] == (
            'admission webhook "vjob.kb.io" denied the request: metadata.labels[kueue.x-k8s.io/'
            'queue-name]: Invalid value: "default": field is immutable')
