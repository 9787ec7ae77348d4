"""Every object the Kubernetes runtime builds is valid against the published OpenAPI schemas
of the oldest and the newest Kubernetes that docs/kubernetes.md supports (kubernetes-validate
carries them; strict: unknown fields are errors too).

Two sources: the manifest builders for every kind of pool and job, and the bodies the runtime
actually sent to the fake during a run (creates, and each Job patch applied to what it
patches). Workload patches (Kueue's CRD) are not covered: kubernetes-validate carries only
the built-in kinds; the fake's Kueue model checks those."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from app.domain.jobs import EnvVar, Job, JobSpec, JobStatus, Resources
from app.domain.pools import ResourcePool
from app.runtime.kubernetes.manifests import headless_service, job_manifest
from app.runtime.kubernetes.options import KubernetesPoolOptions
from tests.k8sfake import Delays
from tests.kube.test_runtime import harness

# docs/kubernetes.md, "Supported versions".
VERSIONS = ("1.31.0", "1.36.0")
CLASSES = [{"name": "low", "value": 0}, {"name": "high", "value": 100}]


def valid(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def _job(**spec: Any) -> Job:
    base: dict[str, Any] = {
        "name": "训练 ✓", "command": ("python", "-u", "train.py"), "resource_pool_id": "p",
        "queue": "team-a", "image": "registry.example/train:1",
        "envs": (EnvVar("LR", "0.1"),), "labels": {"team": "vision"},
    }
    base.update(spec)
    return Job(job_id="j-7k2m9x4q", owner="alice", spec=JobSpec(**base))


def _options(**opts: Any) -> KubernetesPoolOptions:
    return KubernetesPoolOptions.of(ResourcePool(id="p", runtime="kubernetes", options=opts,
                                                 queues=("team-a",)))


JOBS = {
    "one replica, every field": _job(
        resources=Resources(cpus=1.5, memory_gib=2.5, gpu=1), max_retries=3,
        timeout_seconds=600, priority=100),
    "replicas": _job(replicas=4, max_retries=2),
    "a pod asking for a sidecar": _job(labels={"sidecar.istio.io/inject": "true"}),
}
POOLS = {
    "none": _options(nodeSelector={"nvidia.com/gpu.present": "true"}, priorityClasses=CLASSES,
                     tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]),
    "kueue": _options(queueing="kueue", priorityClasses=CLASSES),
    "volcano": _options(queueing="volcano", priorityClasses=CLASSES),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("job", JOBS)
def test_built_jobs_and_services_are_valid(version: str, pool: str, job: str) -> None:
    spec = JOBS[job]
    valid(job_manifest(spec, POOLS[pool]), version)
    valid(job_manifest(spec, POOLS[pool], attempt=2), version)
    valid(headless_service(spec, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), version)


def test_the_validator_refuses_what_the_apiserver_would_not_know() -> None:
    manifest = job_manifest(JOBS["replicas"], POOLS["none"])
    manifest["spec"]["podFailurePolicy"]["rules"][0]["onPodCondition"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        valid(manifest, VERSIONS[-1])


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 (the Job patches are plain maps, so a strategic merge gives the same)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


async def test_what_the_runtime_sends_is_valid(tmp_path) -> None:
    async for h in harness(tmp_path, delays=Delays()):
        job = h.job("while :; do sleep 0.05; done", replicas=2, timeout_seconds=600,
                    labels={"team": "vision"})
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.RUNNING)
        await h.fake.wait_for(lambda h=h, job=job: h.fake.job(job.job_id)["spec"].get("activeDeadlineSeconds"))
        await h.runtime.stop(job.job_id)
        await h.status(job.job_id, JobStatus.STOPPED)
        sent = [r for r in h.fake.requests
                if r.method in ("POST", "PATCH", "PUT") and isinstance(r.body, dict)]
        created = {(r.body["kind"], r.body["metadata"]["name"]): r.body
                   for r in sent if r.method == "POST"}
        assert set(created) == {("Job", job.job_id), ("Service", job.job_id)}
        patches = [r.body for r in sent if r.method == "PATCH" and "/jobs/" in r.path]
        assert len(patches) == 2  # the deadline, the stop
        for version in VERSIONS:
            for body in created.values():
                valid(body, version)
            for patch in patches:
                valid(_merge(created[("Job", job.job_id)], patch), version)
        await h.runtime.delete(job.job_id)
