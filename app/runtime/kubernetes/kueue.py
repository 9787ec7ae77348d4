"""Kueue (v0.19): a Job's Workload, why it waits, and the stop Kueue does not undo.

Kueue admits a Job by unsuspending it and unsuspends any suspended Job whose Workload is
admitted ("Job admitted, unsuspending", pkg/controller/jobframework/reconciler.go), so a stop
cannot suspend the Job: it sets the Workload's `spec.active: false` (Kueue then evicts it
and suspends the Job itself), or deletes the Job when Kueue has made no Workload for it.
"""

from __future__ import annotations

from app.runtime.kubernetes.queueing import OwnedObjects, Waiting, condition

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"  # Kueue v0.19 stores v1beta2 (v1beta1 is served, deprecated)
PLURAL = "workloads"
# Every Job's Workload carries it (reconciler.go ConstructWorkload): the watch's selector.
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"

# QuotaReserved=False reasons (apis/kueue/v1beta2/workload_types.go) -> jobgraph's codes.
CODES = {
    "WaitingForQuota": "WAITING_FOR_QUOTA",
    "NoMatchingFlavor": "NO_MATCHING_FLAVOR",
    "ExceedsMaxQuota": "EXCEEDS_QUOTA",
    "TopologyPlacementFailed": "TOPOLOGY_PLACEMENT_FAILED",
    "WaitingForPreemptedWorkloads": "WAITING_FOR_PREEMPTION",
    "WaitingForPodsReady": "WAITING_FOR_PODS_READY",
    "Misconfigured": "QUEUE_MISCONFIGURED",
    "Inadmissible": "QUEUE_MISCONFIGURED",
    "Suspended": "QUEUE_STOPPED",
    "AdmissionGated": "ADMISSION_GATED",
    "PendingEvaluation": "WAITING_FOR_ADMISSION",
    "Deactivated": "DEACTIVATED",
}
# v0.19 writes the reason `Pending` unless the UnadmittedWorkloadsObservability gate is on;
# the flavor assigner's message then says why (pkg/scheduler/flavorassigner/flavorassigner.go),
# most severe first, as its mostSevereReason orders them.
LEGACY_MESSAGES = (
    ("doesn't match node affinity", "NO_MATCHING_FLAVOR"),
    ("untolerated taint", "NO_MATCHING_FLAVOR"),
    ("> maximum capacity", "EXCEEDS_QUOTA"),
    ("insufficient unused quota", "WAITING_FOR_QUOTA"),
)
PRIORITY_CLASS_NOT_FOUND = "WorkloadPriorityClassNotFound"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"


def _code(reason: str, message: str) -> str:
    if reason in CODES:
        return CODES[reason]
    for text, code in LEGACY_MESSAGES:
        if text in message:
            return code
    return "WAITING_FOR_ADMISSION"


def is_active(workload: dict) -> bool:
    return (workload.get("spec") or {}).get("active", True) is not False


def _true(workload: dict, kind: str) -> bool:
    cond = condition(workload, kind)
    return cond is not None and cond.get("status") == "True"


class KueueView:
    resource: str | None = PLURAL
    event_kind: str | None = "Workload"

    def __init__(self) -> None:
        self.workloads = OwnedObjects()
        self.missing: str | None = None
        # Jobs for which Kueue reported a missing WorkloadPriorityClass (its event's message).
        self._missing_class: dict[str, str] = {}

    def apply(self, kind: str, obj: dict) -> set[str]:
        return self.workloads.apply(kind, obj)

    def workload_of(self, job_id: str, job: dict) -> dict | None:
        return self.workloads.of_job(job_id, job)

    def job_of(self, kind: str, name: str) -> str | None:
        return self.workloads.job_of(name) if kind == "Workload" else None

    def note_event(self, job_id: str, event: dict) -> bool:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if event.get("reason") == PRIORITY_CLASS_NOT_FOUND and involved.get("kind") == "Job":
            message = event.get("message") or event.get("note") or ""
            changed = self._missing_class.get(job_id) != message
            self._missing_class[job_id] = message
            return changed
        return False

    def waiting(self, job_id: str, job: dict) -> Waiting | None:
        if not (job.get("spec") or {}).get("suspend"):
            return None
        if self.missing is not None:
            return Waiting("QUEUEING_NOT_INSTALLED", self.missing)
        workload = self.workload_of(job_id, job)
        if workload is None:
            if job_id in self._missing_class:
                return Waiting("WORKLOAD_PRIORITY_CLASS_NOT_FOUND", self._missing_class[job_id])
            # The Job is in the cluster, Kueue has not taken it up yet (no Workload).
            message = "Kueue has not created the job's Workload yet"
            priority_class = ((job.get("metadata") or {}).get("labels") or {}).get(PRIORITY_CLASS_LABEL)
            if priority_class:
                # Kueue v0.19 only logs a missing class; name what to check.
                message += f"; is there a WorkloadPriorityClass {priority_class!r}?"
            return Waiting("SUBMITTING", message)
        if not is_active(workload):
            # Deactivated (by jobgraph's hold — reported HELD by the cache — or by Kueue
            # itself, e.g. its requeuing limit): the Evicted condition says why.
            evicted = condition(workload, "Evicted") or {}
            return Waiting("DEACTIVATED", evicted.get("message") or "The workload is deactivated")
        reserved = condition(workload, "QuotaReserved")
        if reserved is not None and reserved.get("status") == "False" and reserved.get("reason"):
            message = reserved.get("message") or ""
            return Waiting(_code(reserved["reason"], message),
                           f"{reserved['reason']}: {message}".rstrip(": "))
        if _true(workload, "QuotaReserved") and not _true(workload, "Admitted"):
            admitted = condition(workload, "Admitted") or {}
            return Waiting("WAITING_FOR_ADMISSION_CHECKS",
                           admitted.get("message") or "The workload has not all checks ready")
        if _true(workload, "Admitted"):
            return Waiting("ADMITTED", "Admitted: the job starts")
        return Waiting("WAITING_FOR_ADMISSION", "waiting for admission by Kueue")

    def stop_settled(self, job_id: str, job: dict) -> bool:
        # Deactivated and holding no quota: Kueue has evicted it and will not admit it.
        workload = self.workload_of(job_id, job)
        return workload is not None and not is_active(workload) and not _true(workload, "QuotaReserved")

    def to_hold(self, job_id: str, job: dict) -> str | None:
        workload = self.workload_of(job_id, job)
        return workload["metadata"]["name"] if workload is not None and is_active(workload) else None
