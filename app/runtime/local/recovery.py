"""Recovery on start: take over the jobs an earlier server left under the root.

Replicas keep running while no server supervises them. On start every job directory is
read back; a replica still running is adopted, identified by pid plus start time (so a
recycled pid is never taken for ours); one that ended meanwhile is settled from the
exit code its wrapper recorded, or reported vanished without one; and what an active
job was waiting for (its deadline, the SIGKILL of a stop) is armed again. A job the
database holds as active but no directory records is reported lost.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from app.domain.jobs import EventType, Job, JobEvent, JobStatus, utcnow
from app.runtime.base import JobUpdate
from app.runtime.local import records
from app.runtime.local.layout import JOB_ID, JobPaths
from app.runtime.local.livejob import LiveJob
from app.runtime.local.outcomes import DEADLINE_REASON
from app.runtime.local.process import ProcessId, adopt, read_exit, read_pid
from app.runtime.local.state import ReplicaState
from app.runtime.local.supervisor import ACTIVE, Supervisor

LOST_REASON = "lost: the local runtime has no record of this job"


def load_jobs(root: Path) -> list[LiveJob]:
    """The jobs recorded under `root`, in directory order; a directory without a
    complete job.json is skipped (see `records.load`)."""
    jobs: list[LiveJob] = []
    for entry in sorted(root.iterdir()):
        if not (entry.is_dir() and JOB_ID.match(entry.name)):
            continue
        loaded = load_job(JobPaths(entry))
        if loaded is not None:
            jobs.append(loaded)
    return jobs


def load_job(paths: JobPaths) -> LiveJob | None:
    """One job read back from its directory (blocking); a final one has every replica
    marked as ended, so log followers stop at the end of what is written."""
    loaded = records.load(paths)
    if loaded is None:
        return None
    record, state, events = loaded
    job = LiveJob(record=record, paths=paths, state=state, events=events)
    if state.status.is_final:
        for ended in job.ended:
            ended.set()
    return job


def reattach(sup: Supervisor) -> None:
    """Take over the loaded jobs: queue the queued ones, adopt live replicas, settle
    those that ended meanwhile, then re-arm what each active job was waiting for."""
    ended_meanwhile: list[tuple[LiveJob, ReplicaState]] = []
    for job in sorted(sup.jobs.values(), key=lambda j: j.record.order):
        ended_meanwhile += _recover(sup, job)
    for job, replica in ended_meanwhile:
        if replica.running:  # a sibling's failure may already have settled it
            attempt_dir = job.paths.attempt_dir(job.pod_name(replica.index), replica.attempt)
            sup.replica_ended(job, replica, record=read_exit(attempt_dir))
    for job in list(sup.jobs.values()):
        _resume(sup, job)


def _recover(sup: Supervisor, job: LiveJob) -> list[tuple[LiveJob, ReplicaState]]:
    """Re-attach to the job's replicas; returns those that ended meanwhile."""
    st = job.state
    if st.status == JobStatus.QUEUED:
        sup.queue.append(job)
        return []
    if st.status.is_final:
        sup.end_replicas(job, range(len(st.replicas)))
        return []
    ended: list[tuple[LiveJob, ReplicaState]] = []
    if st.master_port is not None:
        sup.ports.hold(st.master_port)  # its replicas may be listening on it
    for r in st.replicas:
        if not r.running:
            sup.end_replicas(job, [r.index])
            continue
        attempt_dir = job.paths.attempt_dir(job.pod_name(r.index), r.attempt)
        ident = read_pid(attempt_dir)
        if ident is None and r.pid and r.start_time:
            ident = ProcessId(r.pid, r.start_time)
        watch = None
        if ident is not None:
            r.pid, r.start_time = ident.pid, ident.start_time
            watch = adopt(ident, partial(sup.on_exit, job, r.index, r.attempt))
        if watch is None:
            ended.append((job, r))
        else:
            job.watches[r.index] = watch
    return ended


def _resume(sup: Supervisor, job: LiveJob) -> None:
    """Re-arm what was pending for a job still active after recovery."""
    st = job.state
    if st.status not in ACTIVE:
        return
    if not job.any_running():
        sup.finish(job)
    elif st.killed or (st.ending is not None and st.ending.reason == DEADLINE_REASON):
        sup.kill(job)
    elif st.terminating:
        sup.terminate(job)
    else:
        sup.arm_deadline(job)


def lost_update(job: Job) -> JobUpdate:
    """The update that fails a job this runtime has no record of."""
    now = utcnow()
    event = JobEvent(
        job_id=job.job_id, reason="Lost", message=LOST_REASON, type=EventType.WARNING,
        timestamp=now, key="local-lost",
    )
    return JobUpdate(
        job_id=job.job_id, status=JobStatus.FAILED, reason=LOST_REASON,
        finished_at=now, events=(event,),
    )
