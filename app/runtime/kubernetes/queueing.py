"""What a pool's queueing system (Kueue, Volcano) adds to the view of its jobs.

A `QueueView` keeps the queueing objects of one namespace (Kueue Workloads, Volcano
PodGroups) as the list-then-watch loop delivers them, and answers the cache's questions:
which job an object (or an event about it) belongs to, why a job waits, and whether a
stopped job can still start. `NoQueue` answers for pools without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a job waits, as the cluster shows it now: a code of `PendingReason` and the
    system's own message. `queued`: the queueing system holds the job (it shows QUEUED);
    otherwise the job is PENDING with this reason (e.g. its pods are not scheduled yet).
    The runtime adds `since` (when it first saw the code) to make a `PendingReason`."""

    code: str
    message: str
    queued: bool = True


class QueueView(Protocol):
    # The API resource watched (None: nothing to watch) and the event involvedObject kind.
    resource: str | None
    event_kind: str | None
    # Set when the cluster does not serve `resource` (the system is not installed): why.
    missing: str | None

    def apply(self, kind: str, obj: dict) -> set[str]:
        """Take ("LIST", {"items": [...]}) or a watch event; the job ids it concerns."""

    def job_of(self, kind: str, name: str) -> str | None:
        """The job whose queueing object `kind/name` is (to match its events)."""

    def note_event(self, job_id: str, event: dict) -> bool:
        """Look at an event of the job; True when it changes why the job waits."""

    def waiting(self, job_id: str, job: dict) -> Waiting | None:
        """Why the job waits for the queueing system, or None when it does not."""

    def stop_settled(self, job_id: str, job: dict) -> bool:
        """A stopped job can no longer be started by the queueing system."""

    def to_hold(self, job_id: str, job: dict) -> str | None:
        """For a held job: the queueing object still to deactivate (an active Workload)."""


class NoQueue:
    resource: str | None = None
    event_kind: str | None = None
    missing: str | None = None

    def apply(self, kind: str, obj: dict) -> set[str]:
        return set()

    def job_of(self, kind: str, name: str) -> str | None:
        return None

    def note_event(self, job_id: str, event: dict) -> bool:
        return False

    def waiting(self, job_id: str, job: dict) -> Waiting | None:
        return None

    def stop_settled(self, job_id: str, job: dict) -> bool:
        return True

    def to_hold(self, job_id: str, job: dict) -> str | None:
        return None


def owner_job(obj: dict) -> tuple[str, str] | None:
    """(name, uid) of the batch/v1 Job that controls `obj`."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller") and str(
            ref.get("apiVersion", "")
        ).startswith("batch/"):
            return str(ref.get("name")), str(ref.get("uid"))
    return None


class OwnedObjects:
    """Objects of one kind, by name, each controlled by a Job; the shared half of the views."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}

    def apply(self, kind: str, obj: dict) -> set[str]:
        before = self.objects
        if kind == "LIST":
            self.objects = {o["metadata"]["name"]: o for o in obj["items"]}
            changed = [*before.values(), *self.objects.values()]
        elif kind == "DELETED":
            self.objects = {**before}
            self.objects.pop(obj["metadata"]["name"], None)
            changed = [obj]
        else:
            self.objects = {**before, obj["metadata"]["name"]: obj}
            changed = [obj]
        return {owner[0] for o in changed if (owner := owner_job(o))}

    def of_job(self, job_id: str, job: dict) -> dict | None:
        """The object controlled by this Job (this very Job: its uid, when known)."""
        uid = (job.get("metadata") or {}).get("uid")
        for obj in self.objects.values():
            owner = owner_job(obj)
            if owner and owner[0] == job_id and (not uid or owner[1] == uid):
                return obj
        return None

    def job_of(self, name: str) -> str | None:
        obj = self.objects.get(name)
        owner = owner_job(obj) if obj is not None else None
        return owner[0] if owner else None


def condition(obj: dict, kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None
