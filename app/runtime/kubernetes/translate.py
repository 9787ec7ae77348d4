"""Reading cluster objects (dicts in the API's field names) as jobgraph's statuses,
pods and events."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from app.domain.jobs import EventType, JobEvent, JobStatus, Pod, PodPhase
from app.runtime.kubernetes.manifests import (
    ATTEMPT_ANNOTATION,
    ATTEMPTS_ANNOTATION,
    CONTAINER,
    HELD_ANNOTATION,
    JOB_ID_LABEL,
    STOP_ANNOTATION,
    TIMEOUT_ANNOTATION,
)
from app.runtime.kubernetes.queueing import Waiting

# Waiting reasons that mean "this will not start by itself".
STUCK_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
     "CreateContainerError", "CrashLoopBackOff"}
)
# Pod phases after which a pod runs no more (its log is complete and can be archived).
ENDED = (PodPhase.SUCCEEDED, PodPhase.FAILED)


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def _main_container_status(pod: dict) -> dict:
    """The job's own container: the kubelet sorts statuses by name, so an injected sidecar
    (istio-proxy, linkerd-proxy) may come first."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), {})


def container_started(pod: dict) -> bool:
    """The main container runs or has run (so it has a log)."""
    state = _main_container_status(pod).get("state") or {}
    return bool(state.get("running") or state.get("terminated"))


def waiting_reason(pod: dict) -> str | None:
    """Why the main container waits (`ImagePullBackOff: <message>`), or why the pod is not
    scheduled (`Unschedulable: <message>`)."""
    waiting = (_main_container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return f"{waiting['reason']}: {waiting['message']}" if waiting.get("message") else waiting["reason"]
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            return f"{cond['reason']}: {cond.get('message') or ''}".rstrip(": ")
    return None


def pod_of(job_id: str, pod: dict) -> Pod:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    container = _main_container_status(pod)
    state = container.get("state") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    annotations = meta.get("annotations") or {}
    index = annotations.get("batch.kubernetes.io/job-completion-index", "0")
    try:
        phase = PodPhase(status.get("phase") or "Pending")
    except ValueError:
        phase = PodPhase.UNKNOWN
    reason = waiting.get("reason") or terminated.get("reason") or status.get("reason")
    if waiting.get("message") and waiting.get("reason") in STUCK_REASONS:
        reason = f"{waiting['reason']}: {waiting['message']}"
    if not reason:
        reason = waiting_reason(pod)  # e.g. Unschedulable
    return Pod(
        job_id=job_id,
        name=meta.get("name", ""),
        replica_index=int(index) if str(index).isdigit() else 0,
        phase=phase,
        node_name=(pod.get("spec") or {}).get("nodeName"),
        exit_code=terminated.get("exitCode"),
        restart_count=container.get("restartCount", 0) or 0,
        reason=reason,
        started_at=parse_time((state.get("running") or {}).get("startedAt") or terminated.get("startedAt")),
        finished_at=parse_time(terminated.get("finishedAt")),
    )


def gone_pod(pod: Pod) -> Pod:
    """A pod deleted from the cluster as last seen; one deleted before it ended was killed."""
    if pod.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED):
        return pod
    return replace(pod, phase=PodPhase.FAILED, reason="Deleted: the pod was removed before it ended")


@dataclass(frozen=True, slots=True)
class JobState:
    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pending: Waiting | None = None  # why a QUEUED or PENDING job waits


def _condition(job: dict, kind: str) -> dict | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_state(
    job: dict, pods: list[Pod], *, waiting: Waiting | None = None, stop_settled: bool = True
) -> JobState:
    """suspended = QUEUED, pods pending = PENDING, running = RUNNING, Complete = SUCCEEDED,
    Failed = FAILED (with the reason). `waiting` is why the job waits: when the pool's
    queueing system holds it (`queued`: a suspended Job under Kueue, an unschedulable gang
    under Volcano) it is QUEUED with it, otherwise a PENDING job carries it (unscheduled pods).
    A stop request ends STOPPED once the Job is suspended, no pod is left and (`stop_settled`)
    the queueing system will not start it again."""
    status = job.get("status") or {}
    spec = job.get("spec") or {}
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    started = parse_time(status.get("startTime"))
    failed_pods = [p for p in pods if p.phase is PodPhase.FAILED]
    last_exit = failed_pods[-1].exit_code if failed_pods else None

    # Current Job controllers record the outcome first (SuccessCriteriaMet, FailureTarget)
    # and add Complete/Failed only once every pod has terminated: the outcome is known then.
    if complete := _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        finished = parse_time(status.get("completionTime") or complete.get("lastTransitionTime"))
        return JobState(JobStatus.SUCCEEDED, None, 0, started, finished)
    if failed := _condition(job, "Failed") or _condition(job, "FailureTarget"):
        reason = failed.get("reason") or "Failed"
        if failed.get("message") and reason not in ("DeadlineExceeded",):
            reason = f"{reason}: {failed['message']}"
        return JobState(JobStatus.FAILED, reason, last_exit, started, parse_time(failed.get("lastTransitionTime")))
    live = [p for p in pods if p.phase in (PodPhase.PENDING, PodPhase.RUNNING, PodPhase.UNKNOWN)]
    if annotations.get(STOP_ANNOTATION) == "true":
        if not live and not status.get("active") and spec.get("suspend") and stop_settled:
            return JobState(JobStatus.STOPPED, "stopped by request", None, started, None)
        return JobState(JobStatus.STOPPING, None, None, started)
    running = any(p.phase is PodPhase.RUNNING for p in pods)
    if spec.get("suspend") or (waiting is not None and waiting.queued and not running):
        reason = waiting.message if waiting is not None else "waiting for admission"
        return JobState(JobStatus.QUEUED, reason, None, started, pending=waiting)
    if running:
        return JobState(JobStatus.RUNNING, None, None, started)
    stuck = next((p.reason for p in live if p.reason and p.reason.split(":")[0] in STUCK_REASONS), None)
    return JobState(JobStatus.PENDING, stuck, None, started, pending=waiting)


def is_held(job: dict) -> bool:
    return ((job.get("metadata") or {}).get("annotations") or {}).get(HELD_ANNOTATION) == "true"


def unscheduled(pod: dict) -> bool:
    """Not bound to a node, not being deleted, not ended."""
    return not (pod.get("spec") or {}).get("nodeName") and not (
        pod.get("metadata") or {}).get("deletionTimestamp") and (
        pod.get("status") or {}).get("phase") in (None, "Pending")


def unschedulable(pods: list[dict], failed_scheduling: dict[str, str]) -> Waiting | None:
    """UNSCHEDULABLE while a pod of the job cannot be placed. The kube-scheduler's
    handleSchedulingFailure (pkg/scheduler/schedule_one.go) writes a Warning
    `FailedScheduling` event with the fit error ("0/8 nodes are available: 8 Insufficient
    nvidia.com/gpu. ...") and sets the pod's `PodScheduled=False` condition, reason
    `Unschedulable`, with the same message (the event's is cut at 1024 bytes). The condition
    is state (it outlives the event's one-hour TTL and goes once the pod is bound); the
    event (`failed_scheduling`: pod name -> its latest message) covers a scheduler that
    writes only events."""
    for pod in pods:
        if not unscheduled(pod):
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                    and cond.get("reason") == "Unschedulable"):
                return Waiting("UNSCHEDULABLE", cond.get("message") or "Unschedulable",
                               queued=False)
        message = failed_scheduling.get(pod["metadata"]["name"])
        if message:
            return Waiting("UNSCHEDULABLE", message, queued=False)
    return None


# Failures after which a multi-replica job is run again (a rank's non-zero exit matched the
# FailJob rule, or a pod failed in a way no rule matched).
RETRIED_REASONS = ("PodFailurePolicy", "BackoffLimitExceeded")


def attempts_of(job: dict) -> tuple[int, int] | None:
    """(this attempt, attempts allowed) of a multi-replica Job; None for others."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations[ATTEMPT_ANNOTATION]), int(annotations[ATTEMPTS_ANNOTATION])
    except (KeyError, ValueError):
        return None


def next_attempt(job: dict, state: JobState) -> int | None:
    """The attempt to run after this failed one, if maxRetries allows another."""
    attempts = attempts_of(job)
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if (
        attempts is None
        or state.status is not JobStatus.FAILED
        or not (state.reason or "").startswith(RETRIED_REASONS)
        or annotations.get(STOP_ANNOTATION) == "true"
    ):
        return None
    attempt, allowed = attempts
    return attempt + 1 if attempt < allowed else None


def deadline_seconds(job: dict, pods: list[Pod]) -> int | None:
    """activeDeadlineSeconds that ends the Job `timeoutSeconds` after its first pod started
    running (the Job controller counts from the Job's startTime, which on a pool without
    Kueue is its creation: queue time would count). None until a pod runs, or once set."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    spec = job.get("spec") or {}
    if TIMEOUT_ANNOTATION not in annotations or spec.get("activeDeadlineSeconds") is not None:
        return None
    started = [p.started_at for p in pods if p.started_at is not None]
    if not started:
        return None
    try:
        timeout = int(annotations[TIMEOUT_ANNOTATION])
    except ValueError:
        return None
    job_start = parse_time((job.get("status") or {}).get("startTime"))
    waited = (min(started) - job_start).total_seconds() if job_start else 0.0
    return timeout + max(0, math.ceil(waited))


def job_id_of(obj: dict) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(JOB_ID_LABEL)


def event_sort_key(event: dict) -> tuple:
    """Events list in name order; this is the order they happened in (the legacy shape has
    lastTimestamp, the new one eventTime; the resourceVersion breaks ties)."""
    meta = event.get("metadata") or {}
    when = (
        parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(meta.get("creationTimestamp"))
    )
    rv = str(meta.get("resourceVersion") or "")
    return (when or datetime.min.replace(tzinfo=UTC), len(rv), rv)


def event_of(job_id: str, event: dict) -> JobEvent:
    """Both event shapes: core/v1 (count, first/lastTimestamp) and events.k8s.io style
    (series, eventTime). The key counts occurrences, so an event seen again is stored once
    and a repeat of it is stored as a new occurrence."""
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    count = series.get("count") or event.get("count") or 1
    when = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(event.get("firstTimestamp"))
        or parse_time(meta.get("creationTimestamp"))
        or datetime.now(UTC)
    )
    involved = event.get("involvedObject") or event.get("regarding") or {}
    message = event.get("message") or event.get("note") or ""
    if involved.get("kind") == "Pod" and involved.get("name"):
        message = f"{involved['name']}: {message}"
    try:
        kind = EventType(event.get("type") or "Normal")
    except ValueError:
        kind = EventType.NORMAL
    return JobEvent(
        job_id=job_id,
        reason=event.get("reason") or "Unknown",
        message=message,
        type=kind,
        timestamp=when,
        key=f"k8s:{meta.get('uid', meta.get('name'))}:{count}",
    )
