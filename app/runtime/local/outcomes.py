"""What ends mean, as changes to a job's state: a replica's end (from the exit record
its wrapper wrote, or the lack of one) and the job's final status once all replicas
are gone. Pure state transitions: no processes, timers or publishing here."""

from __future__ import annotations

import signal

from app.domain.jobs import JobEvent, JobStatus, PodPhase, utcnow
from app.runtime.local.livejob import LiveJob
from app.runtime.local.process import ExitRecord
from app.runtime.local.state import Outcome, ReplicaState

DEADLINE_REASON = "DeadlineExceeded"


def describe_end(pod: str, r: ReplicaState) -> str:
    if r.exit_code is None:
        return f"replica {pod} {r.reason}"
    text = f"replica {pod} exited with code {r.exit_code}"
    return f"{text}: {r.reason}" if r.reason and r.reason != "Error" else text


def record_replica_end(
    job: LiveJob, r: ReplicaState, failure: str | None, record: ExitRecord | None
) -> None:
    """Set the replica's phase, exit code and reason for the end of its attempt, from
    what its wrapper recorded (`record`, read from exit.json), if anything."""
    if record is not None and failure is None:
        r.exit_code, r.finished_at = record.exit_code, record.finished_at
        r.reason = "Completed" if record.exit_code == 0 else (record.reason or "Error")
    elif job.state.killed:  # our SIGKILL took the wrapper down before it could record
        r.exit_code, r.reason = 128 + signal.SIGKILL, "killed by signal 9 (SIGKILL)"
    else:
        r.exit_code = None
        which = f"its process (pid {r.pid})" if r.pid else "its process"
        r.reason = failure or f"vanished: {which} ended without recording an exit code"
    r.phase = PodPhase.SUCCEEDED if r.exit_code == 0 else PodPhase.FAILED
    r.finished_at = r.finished_at or utcnow()


def replica_failure(what: str, r: ReplicaState) -> Outcome:
    """The job fails because this replica failed with no retries left."""
    return Outcome(
        status=JobStatus.FAILED, reason=what, exit_code=r.exit_code,
        event_reason="Failed", event_message=what,
    )


def deadline_exceeded(job: LiveJob) -> Outcome:
    return Outcome(
        status=JobStatus.FAILED, reason=DEADLINE_REASON, exit_code=None,
        event_reason=DEADLINE_REASON,
        event_message=f"the job ran longer than {job.spec.timeout_seconds} s; "
                      "all replicas were killed",
    )


def settle(job: LiveJob) -> JobEvent:
    """All replicas are gone: set the job's final status; returns the event saying so."""
    st = job.state
    if st.ending is not None:
        st.status, st.reason, st.exit_code = st.ending.status, st.ending.reason, \
            st.ending.exit_code
        event = job.add_event(
            st.ending.event_reason, st.ending.event_message, st.ending.event_type
        )
    elif st.stop_requested:
        st.status = JobStatus.STOPPED
        event = job.add_event("Stopped", "all replicas have ended")
    else:
        st.status, st.exit_code = JobStatus.SUCCEEDED, 0
        event = job.add_event(
            "Completed", f"all {len(st.replicas)} replica(s) exited with code 0"
        )
    st.finished_at = max(
        (r.finished_at for r in st.replicas if r.finished_at), default=utcnow()
    )
    return event
