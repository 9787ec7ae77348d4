"""Volcano (v1.16): gang scheduling of a batch/v1 Job through its PodGroup.

Volcano's podgroup controller gives the pods of a Job with `schedulerName: volcano` one
PodGroup, `minMember` from the Job's annotation `scheduling.volcano.sh/group-min-member`
(default 1; pkg/controllers/podgroup/pg_controller_handler.go). jobgraph sets it to the
replica count so no replica starts before all fit. A PodGroup that does not fit has the
condition `Unschedulable` (pkg/scheduler/plugins/gang/gang.go): the job is QUEUED with it.
"""

from __future__ import annotations

from app.domain.jobs import PendingReason
from app.runtime.kubernetes.queueing import OwnedObjects, condition

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

    def waiting(self, job_id: str, job: dict) -> PendingReason | None:
        if self.missing is not None:
            # No Volcano: nothing schedules pods that name it.
            return PendingReason("QUEUEING_NOT_INSTALLED", self.missing)
        podgroup = self.podgroups.of_job(job_id, job)
        if podgroup is None or (podgroup.get("status") or {}).get("phase") not in WAITING_PHASES:
            return None
        unschedulable = condition(podgroup, "Unschedulable")
        if unschedulable is None or unschedulable.get("status") != "True":
            return None
        reason = unschedulable.get("reason") or "Unschedulable"
        message = unschedulable.get("message") or ""
        return PendingReason("GANG_UNSCHEDULABLE", f"{reason}: {message}".rstrip(": "))

    def stop_settled(self, job_id: str, job: dict) -> bool:
        return True
