"""What a job becomes in the cluster: a batch/v1 Job (Indexed, with a headless Service,
for several replicas). Plain dicts in the API's own field names."""

from __future__ import annotations

from typing import Any

from app.domain.errors import ValidationFailed
from app.domain.jobs import Job
from app.runtime.kubernetes.options import KubernetesPoolOptions

MANAGED_BY = "app.kubernetes.io/managed-by"
JOB_ID_LABEL = "jobgraph.io/job-id"
POOL_LABEL = "jobgraph.io/pool"
NAME_ANNOTATION = "jobgraph.io/name"
OWNER_ANNOTATION = "jobgraph.io/owner"
STOP_ANNOTATION = "jobgraph.io/stop-requested"
# Held by its owner: it must not start until released (the queueing system keeps it).
HELD_ANNOTATION = "jobgraph.io/held"
# Which run of the job this Job is, and how many runs its maxRetries allow (multi-replica
# jobs are retried whole by jobgraph, see _pod_failure_policy).
ATTEMPT_ANNOTATION = "jobgraph.io/attempt"
ATTEMPTS_ANNOTATION = "jobgraph.io/attempts"
# timeoutSeconds counts from the first running pod: the runtime sets activeDeadlineSeconds then.
TIMEOUT_ANNOTATION = "jobgraph.io/timeout-seconds"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
VOLCANO_QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
VOLCANO_MIN_MEMBER_ANNOTATION = "scheduling.volcano.sh/group-min-member"
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
CONTAINER = "main"



def selector(pool_id: str) -> str:
    """The label selector of one pool's objects (several pools may share a namespace)."""
    return f"{MANAGED_BY}=jobgraph,{POOL_LABEL}={pool_id}"


def _quantity_gib(gib: float) -> str:
    mib = round(gib * 1024)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _resources(job: Job) -> dict[str, Any]:
    res = job.spec.resources
    amounts: dict[str, str] = {}
    if res.cpus:
        amounts["cpu"] = f"{round(res.cpus * 1000)}m"
    if res.memory_gib:
        amounts["memory"] = _quantity_gib(res.memory_gib)
    if res.gpu:
        amounts["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _env(job: Job, options: KubernetesPoolOptions) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": e.name, "value": e.value} for e in job.spec.envs]
    own = {e["name"] for e in env}
    replicas = job.spec.replicas
    rank: dict[str, Any] = (
        {"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}}
        if replicas > 1
        else {"name": "RANK", "value": "0"}
    )
    # Replica 0 is reachable as <job>-0.<job> through the headless Service.
    master = f"{job.job_id}-0.{job.job_id}" if replicas > 1 else "127.0.0.1"
    for item in (
        {"name": "JOBGRAPH_JOB_ID", "value": job.job_id},
        {"name": "WORLD_SIZE", "value": str(replicas)},
        rank,
        {"name": "LOCAL_RANK", "value": "0"},
        {"name": "MASTER_ADDR", "value": master},
        {"name": "MASTER_PORT", "value": str(options.master_port)},
    ):
        if item["name"] not in own:
            env.append(item)
    return env


def _pod_failure_policy(job: Job) -> dict[str, Any]:
    """A node drain or a preemption (the pod's DisruptionTarget condition) is not the job's
    failure: the pod is replaced without using up a retry. For several replicas, a rank that
    exits non-zero fails the whole Job at once (the other ranks would wait in a dead
    rendezvous); jobgraph then runs all ranks again while maxRetries allows."""
    rules: list[dict[str, Any]] = [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
    if job.spec.replicas > 1:
        rules.append({"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER, "operator": "NotIn", "values": [0]}})
    return {"rules": rules}


def job_manifest(job: Job, options: KubernetesPoolOptions, *, attempt: int = 1) -> dict[str, Any]:
    image = job.spec.image or options.default_image
    if not image:
        raise ValidationFailed(
            f"image is required: pool {job.resource_pool_id!r} runs jobs in containers",
            field="image",
        )
    labels = {MANAGED_BY: "jobgraph", JOB_ID_LABEL: job.job_id, POOL_LABEL: job.resource_pool_id}
    annotations = {NAME_ANNOTATION: job.name, OWNER_ANNOTATION: job.owner}
    priority_class = options.priority_class(job.spec.priority)
    # The user's labels go on the Job and its pods (what a mesh injector, a cost report or a
    # NetworkPolicy selects on); jobgraph's own win.
    user_labels = {k: v for k, v in job.spec.labels.items() if k not in labels}
    job_labels = {**labels, **user_labels}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "command": list(job.spec.command),
                "env": _env(job, options),
                "resources": _resources(job),
            }
        ],
    }
    if options.node_selector:
        pod_spec["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod_spec["tolerations"] = list(options.tolerations)
    if job.spec.replicas > 1:
        annotations[ATTEMPT_ANNOTATION] = str(attempt)
        annotations[ATTEMPTS_ANNOTATION] = str(job.spec.max_retries + 1)
    if job.spec.timeout_seconds:
        annotations[TIMEOUT_ANNOTATION] = str(job.spec.timeout_seconds)
    spec: dict[str, Any] = {
        # Several replicas: no pod is replaced after a failure, the whole job is run again.
        "backoffLimit": 0 if job.spec.replicas > 1 else job.spec.max_retries,
        "podFailurePolicy": _pod_failure_policy(job),
        "completions": job.spec.replicas,
        "parallelism": job.spec.replicas,
        "template": {"metadata": {"labels": {**labels, **user_labels}, "annotations": dict(annotations)},
                     "spec": pod_spec},
    }
    if job.spec.replicas > 1:
        spec["completionMode"] = "Indexed"
        pod_spec["subdomain"] = job.job_id
    if options.queueing == "kueue":
        job_labels[KUEUE_QUEUE_LABEL] = job.queue
        spec["suspend"] = True  # Kueue admits it by unsuspending
        if priority_class:
            job_labels[KUEUE_PRIORITY_LABEL] = priority_class
    elif options.queueing == "volcano":
        pod_spec["schedulerName"] = "volcano"
        annotations[VOLCANO_QUEUE_ANNOTATION] = job.queue
        spec["template"]["metadata"]["annotations"][VOLCANO_QUEUE_ANNOTATION] = job.queue
        # Gang scheduling: Volcano reads the owner Job's annotation for the PodGroup's
        # minMember (default 1, i.e. replicas placed one by one); all replicas or none.
        annotations[VOLCANO_MIN_MEMBER_ANNOTATION] = str(job.spec.replicas)
    if priority_class and options.queueing != "kueue":
        pod_spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job.job_id, "labels": job_labels, "annotations": annotations},
        "spec": spec,
    }


def headless_service(job: Job, owner_uid: str) -> dict[str, Any]:
    """Gives replicas stable names (<job>-<index>.<job>); owned by the Job, so it goes with it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": job.job_id,
            "labels": {MANAGED_BY: "jobgraph", JOB_ID_LABEL: job.job_id,
                       POOL_LABEL: job.resource_pool_id},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job.job_id, "uid": owner_uid,
                 "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {JOB_ID_LABEL: job.job_id},
        },
    }
