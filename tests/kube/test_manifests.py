"""Unit tests: pool options, manifests and the translation of cluster objects."""

from __future__ import annotations

import pytest

from app.domain.errors import ValidationFailed
from app.domain.jobs import EnvVar, EventType, Job, JobSpec, JobStatus, PodPhase, Resources
from app.domain.pools import ResourcePool
from app.runtime.kubernetes.manifests import job_manifest
from app.runtime.kubernetes.options import KubernetesPoolOptions, PoolOptionsError
from app.runtime.kubernetes.translate import event_of, event_sort_key, job_state, pod_of


def options(**opts) -> KubernetesPoolOptions:
    return KubernetesPoolOptions.of(ResourcePool(id="p", runtime="kubernetes", options=opts))


def job(**spec) -> Job:
    base = {"name": "名字", "command": ("python", "train.py"), "resource_pool_id": "p",
            "queue": "q1", "image": "img:1"}
    base.update(spec)
    return Job(job_id="j-abc", owner="alice", spec=JobSpec(**base))


def test_options_are_checked():
    assert options().namespace is None and options().queueing == "none"
    with pytest.raises(PoolOptionsError, match="queueing"):
        options(queueing="slurm")
    with pytest.raises(PoolOptionsError, match="unknown setting"):
        options(nameSpace="x")
    with pytest.raises(PoolOptionsError, match="namespace"):
        options(namespace="Not_A_Label")
    with pytest.raises(PoolOptionsError, match="masterPort"):
        options(masterPort="x")
    with pytest.raises(PoolOptionsError, match="priorityClasses"):
        options(priorityClasses=[{"name": "high"}])


def test_a_single_replica_job():
    m = job_manifest(job(resources=Resources(cpus=0.5, memory_gib=1.5, gpu=2), max_retries=3,
                         timeout_seconds=60, envs=(EnvVar("A", "1"), EnvVar("RANK", "9"))),
                     options(nodeSelector={"pool": "a"}, tolerations=[{"key": "k", "operator": "Exists"}]))
    assert m["metadata"]["name"] == "j-abc"
    assert m["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "jobgraph",
                                       "jobgraph.io/job-id": "j-abc", "jobgraph.io/pool": "p"}
    assert m["metadata"]["annotations"]["jobgraph.io/name"] == "名字"
    spec = m["spec"]
    assert (spec["backoffLimit"], spec["completions"]) == (3, 1)
    # The deadline is set when the first pod runs; disruptions do not use up retries.
    assert "activeDeadlineSeconds" not in spec
    assert m["metadata"]["annotations"]["jobgraph.io/timeout-seconds"] == "60"
    assert spec["podFailurePolicy"] == {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    assert "completionMode" not in spec and "suspend" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["nodeSelector"] == {"pool": "a"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]
    [c] = pod["containers"]
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "1536Mi", "nvidia.com/gpu": "2"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["A"] == "1" and env["RANK"] == "9"  # the job's own value wins
    assert env["WORLD_SIZE"] == "1" and env["MASTER_ADDR"] == "127.0.0.1"


def test_replicas_kueue_volcano_and_priorities():
    classes = [{"name": "low", "value": 0}, {"name": "high", "value": 100}]
    m = job_manifest(job(replicas=4, priority=150), options(queueing="kueue", priorityClasses=classes))
    assert m["spec"]["completionMode"] == "Indexed" and m["spec"]["parallelism"] == 4
    assert m["spec"]["suspend"] is True
    assert m["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q1"
    assert m["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"
    env = {e["name"]: e for e in m["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    assert env["MASTER_ADDR"]["value"] == "j-abc-0.j-abc" and env["WORLD_SIZE"]["value"] == "4"
    # A rank's failure fails the whole Job at once; jobgraph runs all ranks again.
    assert m["spec"]["backoffLimit"] == 0
    assert m["spec"]["podFailurePolicy"]["rules"][1] == {"action": "FailJob", "onExitCodes": {
        "containerName": "main", "operator": "NotIn", "values": [0]}}
    assert m["metadata"]["annotations"]["jobgraph.io/attempt"] == "1"
    assert m["metadata"]["annotations"]["jobgraph.io/attempts"] == "1"

    v = job_manifest(job(priority=5), options(queueing="volcano", priorityClasses=classes))
    pod = v["spec"]["template"]
    assert pod["spec"]["schedulerName"] == "volcano" and pod["spec"]["priorityClassName"] == "low"
    assert pod["metadata"]["annotations"]["scheduling.volcano.sh/queue-name"] == "q1"
    assert "suspend" not in v["spec"]
    # Volcano gangs all replicas: the Job (the PodGroup's owner) names minMember.
    gang = job_manifest(job(replicas=4), options(queueing="volcano"))
    assert gang["metadata"]["annotations"]["scheduling.volcano.sh/group-min-member"] == "4"
    assert "scheduling.volcano.sh/group-min-member" not in gang["spec"]["template"]["metadata"][
        "annotations"]

    with pytest.raises(ValidationFailed, match="image is required"):
        job_manifest(job(image=None), options())
    assert job_manifest(job(image=None), options(defaultImage="d:1"))["spec"]["template"]["spec"][
        "containers"][0]["image"] == "d:1"


def _pod(phase="Pending", state=None, conditions=None, index="0"):
    return {"metadata": {"name": f"j-abc-{index}-x", "labels": {"jobgraph.io/job-id": "j-abc"},
                         "annotations": {"batch.kubernetes.io/job-completion-index": index}},
            "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "conditions": conditions or [],
                       "containerStatuses": [{"name": "main", "state": state or {}}]}}


def test_statuses_from_job_and_pods():
    suspended = {"spec": {"suspend": True}, "status": {}}
    assert job_state(suspended, []).status is JobStatus.QUEUED
    plain = {"spec": {}, "status": {}}
    waiting = pod_of("j-abc", _pod(state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}))
    assert waiting.reason == "ImagePullBackOff: Back-off"
    state = job_state(plain, [waiting])
    assert (state.status, state.reason) == (JobStatus.PENDING, "ImagePullBackOff: Back-off")
    unschedulable = pod_of("j-abc", _pod(conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]))
    assert unschedulable.reason == "Unschedulable: 0/3 nodes"
    running = pod_of("j-abc", _pod("Running", {"running": {"startedAt": "2025-01-02T03:04:05Z"}}, index="1"))
    assert running.replica_index == 1 and running.phase is PodPhase.RUNNING
    assert job_state(plain, [running]).status is JobStatus.RUNNING
    failed = {"spec": {}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]}}
    dead = pod_of("j-abc", _pod("Failed", {"terminated": {"exitCode": 2, "reason": "Error"}}))
    state = job_state(failed, [dead])
    assert state.status is JobStatus.FAILED and state.exit_code == 2
    assert state.reason.startswith("BackoffLimitExceeded")
    deadline = {"spec": {}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "..."}]}}
    assert job_state(deadline, []).reason == "DeadlineExceeded"
    complete = {"spec": {}, "status": {"completionTime": "2025-01-02T03:04:05Z", "conditions": [
        {"type": "Complete", "status": "True"}]}}
    assert job_state(complete, []).status is JobStatus.SUCCEEDED
    # The interim conditions of current Job controllers already are the outcome.
    criteria_met = {"spec": {}, "status": {"conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
         "lastTransitionTime": "2025-01-02T03:04:05Z"}]}}
    state = job_state(criteria_met, [running])
    assert state.status is JobStatus.SUCCEEDED and state.finished_at is not None
    target = {"spec": {}, "status": {"conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy",
         "message": "Container main for pod default/p failed with exit code 3 matching FailJob "
                    "rule at index 1"}]}}
    state = job_state(target, [running])
    assert state.status is JobStatus.FAILED and state.reason.startswith("PodFailurePolicy: ")
    stopping = {"metadata": {"annotations": {"jobgraph.io/stop-requested": "true"}},
                "spec": {"suspend": True}, "status": {}}
    assert job_state(stopping, [running]).status is JobStatus.STOPPING
    assert job_state(stopping, []).status is JobStatus.STOPPED


def test_events_of_both_shapes_and_their_order():
    legacy = {"metadata": {"name": "p.1", "uid": "u1", "resourceVersion": "10"},
              "involvedObject": {"kind": "Pod", "name": "j-abc-x"}, "reason": "Pulled",
              "message": "pulled", "type": "Normal", "count": 2,
              "firstTimestamp": "2025-01-02T03:04:00Z", "lastTimestamp": "2025-01-02T03:04:09Z"}
    new = {"metadata": {"name": "a.2", "uid": "u2", "resourceVersion": "9"},
           "involvedObject": {"kind": "Pod", "name": "j-abc-x"}, "reason": "Scheduled",
           "message": "assigned", "type": "Normal", "eventTime": "2025-01-02T03:04:01.123456Z",
           "firstTimestamp": None, "lastTimestamp": None, "action": "Binding"}
    assert sorted([legacy, new], key=event_sort_key) == [new, legacy]
    one, two = event_of("j-abc", legacy), event_of("j-abc", new)
    assert one.key == "k8s:u1:2" and one.message == "j-abc-x: pulled"
    assert two.timestamp.microsecond == 123456 and two.type is EventType.NORMAL
    assert event_of("j-abc", {**legacy, "count": 3}).key != one.key  # a repeat is a new one
    assert event_of("j-abc", dict(legacy)).key == one.key  # seen again: the same
