"""A job as the runtime supervises it now: persisted state plus live handles, and what
is derived from them (the replicas' environment, pods, the JobUpdate snapshot)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.domain.jobs import EventType, JobEvent, JobSpec, JobStatus, PendingReason, Pod
from app.runtime.base import JobUpdate
from app.runtime.local import records
from app.runtime.local.layout import JobPaths
from app.runtime.local.process import ExitWatch
from app.runtime.local.state import JobState
from app.runtime.local.terminal import PtyTerminal


@dataclass(eq=False)
class LiveJob:
    record: records.JobRecord
    paths: JobPaths
    state: JobState
    events: list[JobEvent]
    watches: dict[int, ExitWatch] = field(default_factory=dict)  # running replicas
    ended: list[asyncio.Event] = field(init=False)  # per replica: it will not run again
    terminals: list[set[PtyTerminal]] = field(init=False)  # open shells per replica
    deadline_timer: asyncio.TimerHandle | None = None
    kill_timer: asyncio.TimerHandle | None = None
    unsaved_events: list[JobEvent] = field(default_factory=list)
    # Kept from starting until released (the database holds it; the runtime is told).
    held: bool = False
    # Why it waits, as last reported (None unless queued).
    pending: PendingReason | None = None

    def __post_init__(self) -> None:
        n = len(self.state.replicas)
        self.ended = [asyncio.Event() for _ in range(n)]
        self.terminals = [set() for _ in range(n)]

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def spec(self) -> JobSpec:
        return self.record.spec

    def pod_name(self, index: int) -> str:
        return f"{self.job_id}-{index}"

    def any_running(self) -> bool:
        return any(r.running for r in self.state.replicas)

    def env(self, index: int) -> dict[str, str]:
        """The server's environment, the job's envs, then the distributed-training
        variables (last, so a job cannot get its own rank wrong)."""
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"  # so `print` reaches the log as it happens
        env.update({e.name: e.value for e in self.spec.envs})
        env.update(
            RANK=str(index),
            LOCAL_RANK=str(index),
            WORLD_SIZE=str(len(self.state.replicas)),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(self.state.master_port),
            JOBGRAPH_JOB_ID=self.job_id,
            JOBGRAPH_POD_NAME=self.pod_name(index),
        )
        return env

    def add_event(
        self, reason: str, message: str, type: EventType = EventType.NORMAL
    ) -> JobEvent:
        event = JobEvent(job_id=self.job_id, reason=reason, message=message, type=type)
        self.events.append(event)
        self.unsaved_events.append(event)  # written to events.jsonl with the next state
        return event

    def pods(self, host: str) -> tuple[Pod, ...]:
        return tuple(
            Pod(
                job_id=self.job_id, name=self.pod_name(r.index), replica_index=r.index,
                phase=r.phase, node_name=host, exit_code=r.exit_code,
                restart_count=max(0, r.attempt - 1), reason=r.reason,
                started_at=r.started_at, finished_at=r.finished_at,
            )
            for r in self.state.replicas
        )

    def update(self, host: str, events: Sequence[JobEvent]) -> JobUpdate:
        """A full snapshot: every field set, all pods, plus the given events."""
        st = self.state
        return JobUpdate(
            job_id=self.job_id, status=st.status, reason=st.reason, exit_code=st.exit_code,
            started_at=st.started_at, finished_at=st.finished_at, pods=self.pods(host),
            events=tuple(events), pending_reason=self.waiting_reason,
        )

    @property
    def waiting_reason(self) -> PendingReason | None:
        return self.pending if self.state.status == JobStatus.QUEUED else None

    def reason_update(self) -> JobUpdate:
        """Only why it waits (no pods, no events): what a change of reason costs."""
        st = self.state
        return JobUpdate(
            job_id=self.job_id, status=st.status, reason=st.reason,
            pending_reason=self.waiting_reason,
        )
