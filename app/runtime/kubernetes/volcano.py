"""Volcano (v1.16): gang scheduling of a batch/v1 Job through its PodGroup.

Volcano's podgroup controller gives the pods of a Job with `schedulerName: volcano` one
PodGroup, `minMember` from the Job's annotation `scheduling.volcano.sh/group-min-member`
(default 1; pkg/controllers/podgroup/pg_controller_handler.go). jobgraph sets it to the
replica count so no replica starts before all fit. A PodGroup that does not fit has the
condition `Unschedulable` (pkg/scheduler/plugins/gang/gang.go): the job is QUEUED with it.
"""

from __future__ import annotations

from app.runtime.kubernetes.queueing import OwnedObjects, Waiting, condition

GROUP = "scheduling.volcano.sh"
VERSION = "v1beta1"
PLURAL = "podgroups"
MIN_MEMBER_ANNOTATION = "scheduling.volcano.sh/group-min-member"
SCHEDULER_NAME = "volcano"
WAITING_PHASES = ("Pending", "Inqueue")


class VolcanoView:
    resource: str | None = PLURAL
    event_kind: str | None = "PodGroup"

    def __init__(self) -> None:
        self.podgroups = OwnedObjects()
        self.missing: str | None = None

    def apply(self, kind: str, obj: dict) -> set[str]:
        return self.podgroups.apply(kind, obj)

    def job_of(self, kind: str, name: str) -> str | None:
        return self.podgroups.job_of(name) if kind == "PodGroup" else None

    def note_event(self, job_id: str, event: dict) -> bool:
        return False

    def waiting(self, job_id: str, job: dict) -> Waiting | None:
        if self.missing is not None:
            # No Volcano: nothing schedules pods that name it.
            return Waiting("QUEUEING_NOT_INSTALLED", self.missing)
        if (job.get("spec") or {}).get("suspend"):
            return None  # no pods, no PodGroup: stopped (or suspended by someone else)
        podgroup = self.podgroups.of_job(job_id, job)
        if podgroup is None:
            # The podgroup controller makes it once the Job controller has made the pods.
            return Waiting("SUBMITTING", "Volcano has not created the job's PodGroup yet",
                           queued=False)
        status = podgroup.get("status") or {}
        phase = status.get("phase")
        if phase not in WAITING_PHASES:
            return None
        unschedulable = condition(podgroup, "Unschedulable")
        if unschedulable is not None and unschedulable.get("status") == "True":
            # The gang plugin's verdict (pkg/scheduler/plugins/gang/gang.go OnSessionClose):
            # fewer than minMember pods fit, so none is bound. The job is QUEUED with it.
            reason = unschedulable.get("reason") or "Unschedulable"
            message = unschedulable.get("message") or ""
            return Waiting("GANG_NOT_READY", f"{reason}: {message}".rstrip(": "))
        # Not judged by the scheduler yet (or the enqueue action keeps it Pending).
        members = (podgroup.get("spec") or {}).get("minMember", 1)
        return Waiting("GANG_NOT_READY",
                       f"PodGroup {podgroup['metadata']['name']} is {phase}: waiting for "
                       f"Volcano to place {members} pod(s) together", queued=False)

    def stop_settled(self, job_id: str, job: dict) -> bool:
        return True

    def to_hold(self, job_id: str, job: dict) -> str | None:
        return None
