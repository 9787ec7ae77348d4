"""Reading and writing a job's directory: job.json, state.json, events.jsonl."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.jobs import Job, JobEvent, JobSpec, JobStatus
from app.runtime.local.files import append_jsonl, atomic_write_json, read_json, read_jsonl
from app.runtime.local.layout import JobPaths
from app.runtime.local.state import JobState, ReplicaState, event_from_dict, event_to_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What job.json holds: the spec as submitted plus who and in which order."""

    job_id: str
    owner: str
    spec: JobSpec
    order: int  # arrival order among this runtime's jobs (queue tie-break)
    created_at: datetime


def write_job(paths: JobPaths, job: Job, *, order: int) -> None:
    data: dict[str, Any] = {
        **job.spec.to_config(),
        "jobId": job.job_id,
        "owner": job.owner,
        "priority": job.spec.priority,
        "order": order,
        "createdAt": job.created_at.isoformat(),
    }
    atomic_write_json(paths.job_file, data)


def new_state(replicas: int) -> JobState:
    return JobState(status=JobStatus.QUEUED, replicas=[ReplicaState(i) for i in range(replicas)])


def append_event(paths: JobPaths, event: JobEvent) -> None:
    append_jsonl(paths.events_file, event_to_dict(event))


def save(
    paths: JobPaths, state: dict[str, Any], events: list[JobEvent], *, durable: bool = True
) -> None:
    """New events, then the state (as `JobState.to_dict()` gave it); `durable`: fsync'd
    (see `Supervisor.save` for which states need it). Blocking: run off the event loop."""
    for event in events:
        append_event(paths, event)
    atomic_write_json(paths.state_file, state, durable=durable)


def load(paths: JobPaths) -> tuple[JobRecord, JobState, list[JobEvent]] | None:
    """A job directory as written by this runtime, or None when it holds no complete
    job.json (a submit that crashed half-way: the job counts as unknown)."""
    data = read_json(paths.job_file)
    if not isinstance(data, dict):
        return None
    try:
        record = JobRecord(
            job_id=data["jobId"], owner=data["owner"], spec=JobSpec.from_config(data),
            order=int(data["order"]), created_at=datetime.fromisoformat(data["createdAt"]),
        )
        raw_state = read_json(paths.state_file)
        # No state.json yet: the submit stopped right after job.json, the job is queued.
        state = (
            JobState.from_dict(raw_state) if isinstance(raw_state, dict)
            else new_state(record.spec.replicas)
        )
        events = [event_from_dict(record.job_id, e) for e in read_jsonl(paths.events_file)]
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring unreadable local job dir %s: %s", paths.dir, exc)
        return None
    return record, state, events
