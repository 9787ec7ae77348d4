"""The watches' view of the cluster, and its translation into `JobUpdate`s.

`ClusterCache` receives the raw objects of the three list-then-watch loops (Jobs, Pods,
Events) and emits a `JobUpdate` whenever what a job looks like changes. It never awaits:
work that needs the cluster (archiving a log, applying a stop, submitting again) is handed
to the runtime through callbacks, which schedule it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from app.domain.errors import NotFound
from app.domain.jobs import (
    EventType,
    Job,
    JobEvent,
    JobStatus,
    PendingReason,
    Pod,
    PodPhase,
    utcnow,
)
from app.runtime.base import JobUpdate
from app.runtime.kubernetes.queueing import NoQueue, QueueView, Waiting
from app.runtime.kubernetes.translate import (
    ENDED,
    JobState,
    attempts_of,
    container_started,
    deadline_seconds,
    event_of,
    event_sort_key,
    gone_pod,
    is_held,
    job_id_of,
    job_state,
    next_attempt,
    pod_of,
    unschedulable,
)

# Events of objects not (yet) known, kept to be matched once their job or pod shows up.
UNMATCHED_EVENTS = 2000
HELD = Waiting("HELD", "held by its owner: it does not start until released")


class ClusterCache:
    def __init__(
        self,
        *,
        emit: Callable[[JobUpdate], None],
        keep_pod_log: Callable[[str, str], None],
        # Callbacks whose result (a task, say) is not used.
        apply_stop: Callable[[str], object],
        resubmit: Callable[[Job], object],
        queue: QueueView | None = None,
        end_attempt: Callable[[str], object] = lambda job_id: None,
        start_attempt: Callable[[str, int], object] = lambda job_id, attempt: None,
        set_deadline: Callable[[str, int], object] = lambda job_id, seconds: None,
        hold_queued: Callable[[str, str], object] = lambda job_id, name: None,
    ) -> None:
        """`emit` takes every update; `keep_pod_log(job_id, pod)` (archive the log of a
        pod whose container has started, at each of its changes), `apply_stop(job_id)`,
        `resubmit(job)`, `end_attempt(job_id)` (delete the failed attempt's Job and its
        pods), `start_attempt(job_id, attempt)` and `set_deadline(job_id, seconds)` start
        that work in the background. `queue` is the pool's queueing system's view (Kueue
        Workloads, Volcano PodGroups)."""
        self._emit = emit
        self._keep_pod_log = keep_pod_log
        self._apply_stop = apply_stop
        self._resubmit = resubmit
        self.queue: QueueView = queue or NoQueue()
        self._end_attempt = end_attempt
        self._start_attempt = start_attempt
        self._set_deadline = set_deadline
        self._hold_queued = hold_queued
        # Multi-replica jobs whose failed attempt is being deleted -> the attempt to start.
        self.retrying: dict[str, int] = {}
        self._deadlines_set: set[str] = set()  # uids of Jobs given their activeDeadlineSeconds
        self.jobs: dict[str, dict] = {}  # job id -> Job object
        self.pods: dict[str, dict] = {}  # pod name -> Pod object
        # Pods that went away (a stop, a retry's failed pod being cleaned up): still shown
        # with their job, so that their archived logs stay reachable.
        self._gone: dict[str, dict[str, dict]] = {}  # job id -> pod name -> last state
        self.known: set[str] = set()  # job ids submitted or listed (to match events)
        self._unmatched: deque[dict] = deque(maxlen=UNMATCHED_EVENTS)
        self._reported: dict[str, tuple] = {}
        # job id -> (code, since): when the runtime first saw the job wait for that code.
        self._waiting_since: dict[str, tuple[str, datetime]] = {}
        # pod name -> message of its latest FailedScheduling event (dropped with the pod).
        self._failed_scheduling: dict[str, str] = {}
        self.deleting: set[str] = set()  # deleted by jobgraph: their vanishing is expected
        self.stops: set[str] = set()  # stops not yet applied (the cluster was unreachable)
        # Stopped by deleting the Job (Kueue had made no Workload): its vanishing is the stop.
        self.stopped_by_deletion: set[str] = set()
        self._awaiting_first_list: dict[str, Job] = {}
        self._changed = asyncio.Event()  # set (and replaced) on every pod change
        # Events are matched to jobs through the job cache, so they wait for its first list.
        self.jobs_listed = asyncio.Event()

    def adopt(self, active_jobs: Sequence[Job]) -> None:
        """Jobs the database holds as not final; checked against the first listing."""
        self._awaiting_first_list = {job.job_id: job for job in active_jobs}
        self.known.update(self._awaiting_first_list)
        self.stops.update(j.job_id for j in active_jobs if j.status is JobStatus.STOPPING)

    # -- reads ---------------------------------------------------------------------------

    def pod_of_job(self, job_id: str, pod_name: str) -> dict | None:
        pod = self.pods.get(pod_name)
        if pod is not None and job_id_of(pod) != job_id:
            raise NotFound(f"pod {pod_name!r} not found in job {job_id!r}")
        return pod

    def pod_names_of_job(self, job_id: str) -> list[str]:
        return [n for n, p in self.pods.items() if job_id_of(p) == job_id]

    def next_pod_change(self) -> asyncio.Event:
        """An event set at the next pod change (take it before looking at the pods)."""
        return self._changed

    # -- jobs ----------------------------------------------------------------------------

    def on_jobs(self, kind: str, obj: dict) -> None:
        job_id: str | None
        if kind == "LIST":
            listed = {found: o for o in obj["items"] if (found := job_id_of(o))}
            vanished = set(self.jobs) - set(listed)
            self.jobs = listed
            self.known.update(listed)
            for job_id in vanished:
                self._job_vanished(job_id)
            for job_id in listed:
                self._report(job_id)
            self._check_first_list(listed)
            self.jobs_listed.set()
            self._match_unmatched()
            for job_id in list(self.stops):
                if job_id in listed:
                    self._apply_stop(job_id)
                else:
                    self.stops.discard(job_id)
            return
        job_id = job_id_of(obj)
        if not job_id:
            return
        if kind == "DELETED":
            self.jobs.pop(job_id, None)
            self._job_vanished(job_id)
        else:
            new = job_id not in self.known
            self.jobs[job_id] = obj
            self.known.add(job_id)
            self._report(job_id)
            if new:
                self._match_unmatched()

    def _job_vanished(self, job_id: str) -> None:
        self._reported.pop(job_id, None)
        self._waiting_since.pop(job_id, None)
        attempt = self.retrying.pop(job_id, None)
        if attempt is not None and job_id not in self.deleting:
            # The failed attempt's Job went with all its pods (foreground deletion): run again.
            self._start_attempt(job_id, attempt)
            return
        self._gone.pop(job_id, None)
        if job_id in self.deleting:
            self.deleting.discard(job_id)
            return
        # Deleted behind jobgraph's back: the job cannot end by itself any more.
        stopped = job_id in self.stops or job_id in self.stopped_by_deletion
        self.stopped_by_deletion.discard(job_id)
        self._emit(
            JobUpdate(
                job_id=job_id,
                status=JobStatus.STOPPED if stopped else JobStatus.FAILED,
                finished_at=utcnow(),
                reason=None if stopped else "the Job was deleted from the cluster",
            )
        )

    def _check_first_list(self, listed: dict[str, dict]) -> None:
        waiting, self._awaiting_first_list = self._awaiting_first_list, {}
        for job_id, job in waiting.items():
            if job_id in listed:
                continue
            if job.status is JobStatus.PENDING and job.started_at is None:
                # Recorded, but the server stopped before the create reached the cluster.
                self._resubmit(job)
            elif job.status is JobStatus.STOPPING:
                self.stops.discard(job_id)
                self._emit(
                    JobUpdate(job_id=job_id, status=JobStatus.STOPPED, finished_at=utcnow())
                )
            else:
                self._emit(
                    JobUpdate(job_id=job_id, status=JobStatus.FAILED, finished_at=utcnow(),
                              reason="lost: the Job no longer exists in the cluster")
                )

    # -- pods ----------------------------------------------------------------------------

    def on_pods(self, kind: str, obj: dict) -> None:
        job_id: str | None
        if kind == "LIST":
            before = self.pods
            self.pods = {o["metadata"]["name"]: o for o in obj["items"]}
            touched = {j for j in map(job_id_of, [*before.values(), *obj["items"]]) if j}
            for name, pod in before.items():
                if name not in self.pods:
                    self._pod_gone(pod)
            for name, pod in self.pods.items():
                self._keep_log(job_id_of(pod), name, pod)
            for job_id in touched:
                self._report(job_id)
            self._match_unmatched()
        else:
            name = obj["metadata"]["name"]
            job_id = job_id_of(obj)
            previous = self.pods.get(name)
            if kind == "DELETED":
                self.pods.pop(name, None)
                self._pod_gone(obj)
            else:
                self.pods[name] = obj
            self._keep_log(job_id, name, obj)
            if job_id:
                self._report(job_id)
            if previous is None:
                self._match_unmatched()
        self._changed.set()
        self._changed = asyncio.Event()

    def _pod_gone(self, pod: dict) -> None:
        self._failed_scheduling.pop(pod["metadata"]["name"], None)
        job_id = job_id_of(pod)
        if job_id and job_id in self.jobs:
            self._gone.setdefault(job_id, {})[pod["metadata"]["name"]] = pod

    def _keep_log(self, job_id: str | None, name: str, pod: dict) -> None:
        if job_id and (container_started(pod) or pod_of(job_id, pod).phase in ENDED):
            self._keep_pod_log(job_id, name)

    def _report(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        live = [p for p in self.pods.values() if job_id_of(p) == job_id]
        names = {p["metadata"]["name"] for p in live}
        gone = [p for name, p in self._gone.get(job_id, {}).items() if name not in names]
        raw = sorted(
            [*live, *gone],
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )
        pods = sorted(
            [pod_of(job_id, p) for p in live] + [gone_pod(pod_of(job_id, p)) for p in gone],
            key=lambda p: (p.replica_index, next(i for i, r in enumerate(raw)
                                                 if r["metadata"]["name"] == p.name)),
        )
        state = job_state(
            job, [pod_of(job_id, p) for p in live],
            waiting=self._waiting(job_id, job, live),
            stop_settled=self.queue.stop_settled(job_id, job),
        )
        events: tuple[JobEvent, ...] = ()
        if (attempt := next_attempt(job, state)) is not None:
            state, events = self._retry(job_id, job, state, attempt)
        elif not state.status.is_final:
            self._deadline(job_id, job, pods)
        pending = self._pending_reason(job_id, state.pending)
        snapshot = (state, tuple(pods), pending)
        if self._reported.get(job_id) == snapshot:
            return
        self._reported[job_id] = snapshot
        self._emit(
            JobUpdate(
                job_id=job_id,
                status=state.status,
                reason=state.reason,
                exit_code=state.exit_code,
                started_at=state.started_at,
                finished_at=state.finished_at or (utcnow() if state.status.is_final else None),
                # No pod known for an ended job (e.g. after a restart, its pods cleaned up):
                # keep the pods the database has.
                pods=tuple(pods) if pods or not state.status.is_final else None,
                pending_reason=pending,
                events=events,
            )
        )

    def _waiting(self, job_id: str, job: dict, pods: list[dict]) -> Waiting | None:
        """Why the job waits, most telling first: held by its owner; what the queueing
        system says; a pod the scheduler cannot place."""
        if is_held(job):
            if (name := self.queue.to_hold(job_id, job)) is not None:
                self._hold_queued(job_id, name)  # made after the hold: deactivate it too
            return HELD
        waiting = self.queue.waiting(job_id, job)
        if waiting is not None and waiting.queued:
            return waiting
        return unschedulable(pods, self._failed_scheduling) or waiting

    def _pending_reason(self, job_id: str, waiting: Waiting | None) -> PendingReason | None:
        """`since` is when this runtime first saw the job wait for this code; a new message
        for the same code (Kueue's count of missing GPUs, say) keeps it. The core keeps the
        stored `since` across restarts while the code stays the same."""
        if waiting is None:
            self._waiting_since.pop(job_id, None)
            return None
        seen = self._waiting_since.get(job_id)
        if seen is None or seen[0] != waiting.code:
            seen = (waiting.code, utcnow())
            self._waiting_since[job_id] = seen
        return PendingReason(waiting.code, waiting.message, seen[1])

    # -- queueing objects (Kueue Workloads, Volcano PodGroups) ---------------------------

    def queue_served(self, missing: str | None) -> None:
        """Whether the cluster serves the queueing system's API (None) or not (why)."""
        if self.queue.missing != missing:
            self.queue.missing = missing
            for job_id in list(self.jobs):
                self._report(job_id)

    def on_queue_objects(self, kind: str, obj: dict) -> None:
        for job_id in self.queue.apply(kind, obj):
            self._report(job_id)
        self._match_unmatched()

    def _retry(
        self, job_id: str, job: dict, state: JobState, attempt: int
    ) -> tuple[JobState, tuple[JobEvent, ...]]:
        """A failed attempt of a multi-replica job with retries left: shown PENDING while its
        Job and pods go, then the next attempt starts (`_job_vanished`)."""
        allowed = (attempts_of(job) or (attempt, attempt))[1]
        reason = f"attempt {attempt - 1} of {allowed} failed ({state.reason}); retrying"
        events: tuple[JobEvent, ...] = ()
        if job_id not in self.retrying:
            self.retrying[job_id] = attempt
            self._end_attempt(job_id)
            events = (JobEvent(
                job_id=job_id, reason="Retried", type=EventType.WARNING, timestamp=utcnow(),
                message=f"attempt {attempt - 1} of {allowed} failed: {state.reason}; "
                        f"starting attempt {attempt} with all {_replicas(job)} replicas",
                key=f"jobgraph:retry:{job_id}:{attempt}",
            ),)
        return JobState(JobStatus.PENDING, reason, None, state.started_at), events

    def _deadline(self, job_id: str, job: dict, pods: list[Pod]) -> None:
        uid = (job.get("metadata") or {}).get("uid") or ""
        if uid in self._deadlines_set:
            return
        seconds = deadline_seconds(job, [p for p in pods if p.phase is not PodPhase.PENDING])
        if seconds is not None:
            self._deadlines_set.add(uid)
            self._set_deadline(job_id, seconds)

    # -- events --------------------------------------------------------------------------

    def on_events(self, kind: str, obj: dict) -> None:
        items = obj["items"] if kind == "LIST" else ([] if kind == "DELETED" else [obj])
        self._publish_events(sorted(items, key=event_sort_key), keep_unmatched=True)

    def _job_for_event(self, event: dict) -> str | None:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        name = involved.get("name") or ""
        kind = involved.get("kind")
        if kind == "Job":
            return name if name in self.known else None
        if kind is not None and kind == self.queue.event_kind:
            return self.queue.job_of(kind, name)
        if kind == "Pod":
            pod = self.pods.get(name)
            if pod is not None:
                return job_id_of(pod)
            # A pod not seen yet (or already gone): the Job controller names them <job>-...
            owners = [j for j in self.known if name.startswith(j + "-")]
            return max(owners, key=len) if owners else None
        return None

    def _publish_events(self, items: list[dict], *, keep_unmatched: bool) -> None:
        by_job: dict[str, list] = {}
        waiting_changed: set[str] = set()
        kinds = {"Job", "Pod", self.queue.event_kind}
        for event in items:
            job_id = self._job_for_event(event)
            if job_id:
                by_job.setdefault(job_id, []).append(event_of(job_id, event))
                if self.queue.note_event(job_id, event) or self._note_scheduling(event):
                    waiting_changed.add(job_id)
            elif keep_unmatched and (event.get("involvedObject") or {}).get("kind") in kinds:
                self._unmatched.append(event)
        for job_id, events in by_job.items():
            self._emit(JobUpdate(job_id=job_id, events=tuple(events)))
        for job_id in waiting_changed:
            self._report(job_id)

    def _note_scheduling(self, event: dict) -> bool:
        """Keep the latest FailedScheduling message of a pod still waiting for a node."""
        involved = event.get("involvedObject") or event.get("regarding") or {}
        name = involved.get("name") or ""
        pod = self.pods.get(name)
        if (event.get("reason") != "FailedScheduling" or involved.get("kind") != "Pod"
                or pod is None or (pod.get("spec") or {}).get("nodeName")):
            return False
        message = event.get("message") or event.get("note") or ""
        changed = self._failed_scheduling.get(name) != message
        self._failed_scheduling[name] = message
        return changed

    def _match_unmatched(self) -> None:
        if not self._unmatched:
            return
        waiting = list(self._unmatched)
        self._unmatched.clear()
        matched = [e for e in waiting if self._job_for_event(e)]
        self._unmatched.extend(e for e in waiting if not self._job_for_event(e))
        if matched:
            self._publish_events(matched, keep_unmatched=False)


def _replicas(job: dict) -> int:
    return int((job.get("spec") or {}).get("completions") or 1)
