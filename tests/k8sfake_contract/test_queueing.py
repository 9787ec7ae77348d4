"""The fake's Kueue and Volcano, through the unmodified client: the behaviours of the real
controllers that jobgraph's runtime depends on (tests/k8sfake/kueue.py, volcano.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import Delays, FakeKubernetes
from tests.k8sfake_contract.conftest import job_manifest

KUEUE = ("kueue.x-k8s.io", "v1beta2")
VOLCANO = ("scheduling.volcano.sh", "v1beta1")


@asynccontextmanager
async def clients(**options) -> AsyncIterator[tuple[FakeKubernetes, client.ApiClient]]:
    async with FakeKubernetes.running(delays=Delays(), **options) as fake:
        cfg = client.Configuration()
        await config.load_kube_config_from_dict(fake.kubeconfig_dict(), client_configuration=cfg)
        async with client.ApiClient(cfg) as api:
            yield fake, api
        assert not fake.controller_errors, fake.controller_errors


def sleeping(name: str, **kwargs) -> dict:
    return job_manifest(name, ["sh", "-c", "while :; do sleep 0.05; done"], **kwargs)


def running_pods(fake: FakeKubernetes, job: str) -> list[dict]:
    return [p for p in fake.pods_of(job) if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


async def test_kueue_unsuspends_an_admitted_job_someone_suspended() -> None:
    # The reason a stop may not suspend a Kueue Job (reconciler.go: "Job admitted, unsuspending").
    async with clients(kueue=True) as (fake, api):
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
        await batch.create_namespaced_job("default", sleeping(
            "k", labels={"kueue.x-k8s.io/queue-name": "team-a"}))
        await fake.wait_for(lambda: fake.workload("k"))
        [wl] = (await custom.list_namespaced_custom_object(
            *KUEUE, "default", "workloads", label_selector="kueue.x-k8s.io/job-uid"))["items"]
        assert wl["metadata"]["ownerReferences"][0]["name"] == "k"
        assert wl["spec"]["active"] is True and wl["spec"]["queueName"] == "team-a"
        fake.admit("k")
        await fake.wait_for(lambda: running_pods(fake, "k"))
        await batch.patch_namespaced_job("k", "default", {"spec": {"suspend": True}})
        await fake.wait_idle()
        await fake.wait_for(lambda: running_pods(fake, "k"))
        assert fake.job("k")["spec"]["suspend"] is False
        # Deactivating the Workload is what holds: evicted, suspended, quota released.
        with pytest.raises(ApiException) as smp:  # custom resources take no strategic merge
            await custom.patch_namespaced_custom_object(
                *KUEUE, "default", "workloads", wl["metadata"]["name"], {"spec": {"active": False}},
                _content_type="application/strategic-merge-patch+json")
        assert smp.value.status == 415
        await custom.patch_namespaced_custom_object(
            *KUEUE, "default", "workloads", wl["metadata"]["name"], {"spec": {"active": False}},
            _content_type="application/merge-patch+json")
        await fake.wait_for(lambda: not fake.pods_of("k"))
        await fake.wait_idle()
        wl = fake.workload("k")
        conditions = {c["type"]: c for c in wl["status"]["conditions"]}
        assert conditions["Evicted"]["reason"] == "Deactivated"
        assert conditions["QuotaReserved"]["status"] == "False"
        assert fake.job("k")["spec"]["suspend"] is True and not fake.pods_of("k")
        reasons = [e["reason"] for e in fake.events_for("k", kind="Job")]
        assert "Started" in reasons and "Stopped" in reasons
        # podSets are immutable (Kueue's workload webhook).
        with pytest.raises(ApiException) as invalid:
            await custom.patch_namespaced_custom_object(
                *KUEUE, "default", "workloads", wl["metadata"]["name"],
                {"spec": {"podSets": []}}, _content_type="application/merge-patch+json")
        assert invalid.value.status == 422
        with pytest.raises(ApiException) as typed:  # the CRD schema: a boolean
            await custom.patch_namespaced_custom_object(
                *KUEUE, "default", "workloads", wl["metadata"]["name"],
                {"spec": {"active": "false"}}, _content_type="application/merge-patch+json")
        assert typed.value.status == 422
        assert "spec.active in body must be of type boolean" in typed.value.body


async def test_without_kueue_there_is_no_workload_api() -> None:
    async with clients() as (_fake, api):
        with pytest.raises(ApiException) as missing:
            await client.CustomObjectsApi(api).list_namespaced_custom_object(
                *KUEUE, "default", "workloads")
        assert missing.value.status == 404


async def test_volcano_makes_a_podgroup_and_gangs_its_pods() -> None:
    async with clients(volcano=True, node_allocatable={"nvidia.com/gpu": 2}) as (fake, api):
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)

        def gpu_job(name: str, annotations: dict[str, str]) -> dict:
            body = sleeping(name, completions=3, parallelism=3, indexed=True,
                            schedulerName="volcano")
            spec = body["spec"]
            spec["template"]["spec"]["schedulerName"] = spec.pop("schedulerName")
            spec["template"]["spec"]["containers"][0]["resources"] = {
                "requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
            body["metadata"]["annotations"] = annotations
            return body

        # minMember 3 for 2 GPUs: no pod is bound.
        await batch.create_namespaced_job("default", gpu_job(
            "gang", {"scheduling.volcano.sh/group-min-member": "3"}))
        await fake.wait_for(lambda: len(fake.pods_of("gang")) == 3)
        await fake.wait_idle()
        [pg] = (await custom.list_namespaced_custom_object(
            *VOLCANO, "default", "podgroups"))["items"]
        assert pg["metadata"]["name"] == "podgroup-" + fake.job("gang")["metadata"]["uid"]
        assert pg["spec"]["minMember"] == 3
        unschedulable = next(c for c in pg["status"]["conditions"] if c["type"] == "Unschedulable")
        assert unschedulable["reason"] == "NotEnoughResources"
        assert unschedulable["message"].startswith("3/3 tasks in gang unschedulable")
        assert not any(p["spec"].get("nodeName") for p in fake.pods_of("gang"))
        await batch.delete_namespaced_job("gang", "default", propagation_policy="Background")
        await fake.wait_for(lambda: not fake.pods_of("gang") and not fake.store.list("podgroups"))
        # Without the annotation minMember is 1: two pods placed, the third waits.
        await batch.create_namespaced_job("default", gpu_job("loose", {}))
        await fake.wait_for(lambda: len(running_pods(fake, "loose")) == 2)
        await fake.wait_idle()
        assert len([p for p in fake.pods_of("loose") if p["spec"].get("nodeName")]) == 2
