"""LocalRuntime: runs jobs as real processes on this machine.

Its state lives in files under `root` (see `layout.py`), so a new server can pick up
where the last one stopped: replicas keep running while no server supervises them.
All methods run on one event loop; process ends and timers arrive as loop callbacks.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

from app.domain.errors import Conflict, NotFound, RuntimeUnavailable, ValidationFailed
from app.domain.jobs import EventType, Job, JobEvent, JobStatus, PodPhase, utcnow
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate, Terminal
from app.runtime.local import records
from app.runtime.local.layout import JobPaths
from app.runtime.local.livejob import LiveJob
from app.runtime.local.logs import read_lines
from app.runtime.local.process import (
    ProcessId, adopt, read_exit, read_pid, signal_group, spawn_wrapper, watch_child,
)
from app.runtime.local.state import Outcome, ReplicaState
from app.runtime.local.terminal import PtyTerminal

DEFAULT_SLOTS = 4
LOST_REASON = "lost: the local runtime has no record of this job"
DEADLINE_REASON = "DeadlineExceeded"
_DELETE_WAIT_SECONDS = 5.0
# Job ids become directory names: accept only what `new_job_id` makes (DNS-1123 label).
_JOB_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ACTIVE = (JobStatus.RUNNING, JobStatus.STOPPING)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe_end(pod: str, r: ReplicaState) -> str:
    if r.exit_code is None:
        return f"replica {pod} {r.reason}"
    text = f"replica {pod} exited with code {r.exit_code}"
    return f"{text}: {r.reason}" if r.reason and r.reason != "Error" else text


async def _nothing() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover  (makes this an async generator)


class LocalRuntime:
    """The `Runtime` for pools with `runtime: local`."""

    def __init__(
        self, pool: ResourcePool, *, root: Path, stop_grace_seconds: float = 10.0
    ) -> None:
        self.pool = pool
        self._root = Path(root)
        self._grace = stop_grace_seconds
        self._slots = pool.max_concurrent_jobs if pool.max_concurrent_jobs is not None \
            else DEFAULT_SLOTS
        self._host = socket.gethostname()
        self._jobs: dict[str, LiveJob] = {}
        self._queue: list[str] = []  # job ids waiting for a slot (picked by priority)
        self._next_order = 0
        self._updates: asyncio.Queue[JobUpdate | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self, active_jobs: Sequence[Job]) -> None:
        if self._loop is not None:
            raise Conflict("the local runtime is already started")
        self._loop = asyncio.get_running_loop()
        self._root.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self._root.iterdir()):
            if entry.is_dir() and _JOB_ID.match(entry.name):
                self._load(JobPaths(entry))

        ended_meanwhile: list[tuple[LiveJob, ReplicaState]] = []
        for job in sorted(self._jobs.values(), key=lambda j: j.record.order):
            ended_meanwhile += self._recover(job)
        for job, replica in ended_meanwhile:
            if replica.running:  # a sibling's failure may already have settled it
                self._replica_ended(job, replica)
        for job in list(self._jobs.values()):
            self._resume(job)

        for job in active_jobs:
            if job.job_id in self._jobs:
                continue
            if job.status == JobStatus.PENDING:
                await self.submit(job)
            else:
                self._report_lost(job)
        # Full snapshots with every stored event: the database converges even if some
        # updates were lost while the server went down (events are keyed: no duplicates).
        for job in sorted(self._jobs.values(), key=lambda j: j.record.order):
            self._updates.put_nowait(job.update(self._host, job.events))
        self._schedule()

    async def close(self) -> None:
        """Stop supervising; replicas keep running, for the next `start` to adopt."""
        if self._closed:
            return
        self._closed = True
        terminals: list[PtyTerminal] = []
        for job in self._jobs.values():
            self._cancel_timers(job)
            for watch in job.watches.values():
                watch.close()
            job.watches.clear()
            for ended in job.ended:
                ended.set()  # log followers finish what is written and stop
            for shells in job.terminals:
                terminals += shells
        for term in terminals:
            await term.close()
        self._updates.put_nowait(None)

    # ---------------------------------------------------------------- the port

    def validate(self, job: Job) -> None:
        """Every valid spec runs here (the image is recorded, not used)."""

    async def submit(self, job: Job) -> None:
        self._require_running()
        if job.job_id in self._jobs:
            return  # already accepted: submitting again is harmless
        if not _JOB_ID.match(job.job_id):
            raise ValidationFailed(f"invalid job id {job.job_id!r}", field="jobId")
        paths = JobPaths(self._root / job.job_id)
        order = self._next_order
        try:
            if paths.dir.exists():  # leftovers of a submit that crashed before job.json
                shutil.rmtree(paths.dir)
            paths.create([f"{job.job_id}-{i}" for i in range(job.spec.replicas)])
            records.write_job(paths, job, order=order)
            state = records.new_state(job.spec.replicas)
            records.save_state(paths, state)
        except OSError as exc:
            raise RuntimeUnavailable(f"local runtime cannot record the job: {exc}") from exc
        self._next_order += 1
        record = records.JobRecord(job.job_id, job.owner, job.spec, order, job.created_at)
        entry = LiveJob(record=record, paths=paths, state=state, events=[])
        self._jobs[job.job_id] = entry

        created = f"job recorded with {job.spec.replicas} replica(s)"
        if job.spec.image:
            created += f"; image {job.spec.image!r} is recorded but not used by the local runtime"
        events = [
            entry.add_event("Created", created),
            entry.add_event("Queued", f"waiting for one of {self._slots} job slot(s)"),
        ]
        self._queue.append(job.job_id)
        self._publish(entry, events)
        self._schedule()

    async def stop(self, job_id: str) -> None:
        self._require_running()
        job = self._get(job_id)
        st = job.state
        if st.status.is_final or st.terminating:
            return
        if st.status == JobStatus.QUEUED:
            self._queue.remove(job_id)
            st.stop_requested = True
            st.status = JobStatus.STOPPED
            st.finished_at = utcnow()
            for ended in job.ended:
                ended.set()
            self._publish(job, [job.add_event("Stopped", "stopped before it started")])
            return
        st.stop_requested = True
        st.status = JobStatus.STOPPING
        self._cancel_timers(job)
        event = job.add_event("Stopping", f"sending SIGTERM; SIGKILL after {self._grace:g} s")
        self._publish(job, [event])
        self._terminate(job)
        if not job.any_running():
            self._finish(job)

    async def delete(self, job_id: str) -> None:
        self._require_running()
        job = self._get(job_id)
        del self._jobs[job_id]  # from now on its process ends are only reaped
        if job_id in self._queue:
            self._queue.remove(job_id)
        self._cancel_timers(job)
        self._signal_all(job, signal.SIGKILL)
        self._end_replicas(job, range(len(job.state.replicas)))
        watches = list(job.watches.values())
        if watches:
            await asyncio.wait(
                [asyncio.ensure_future(w.wait()) for w in watches], timeout=_DELETE_WAIT_SECONDS
            )
            for watch in watches:
                if not watch.ended:
                    watch.close()
        await asyncio.to_thread(shutil.rmtree, job.paths.dir, True)
        self._schedule()

    def logs(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        job, replica = self._find_pod(job_id, pod_name)
        if tail_lines is not None and tail_lines < 0:
            raise ValidationFailed("tailLines must not be negative", field="tailLines")
        if replica.attempt == 0:
            return _nothing()  # not started yet: no output, and not an error
        return read_lines(
            job.paths.log(job.pod_name(replica.index)),
            tail_lines=tail_lines, follow=follow, ended=job.ended[replica.index],
        )

    async def open_terminal(
        self, job_id: str, pod_name: str, *, rows: int, cols: int
    ) -> Terminal:
        self._require_running()
        job, replica = self._find_pod(job_id, pod_name)
        if not replica.running:
            raise Conflict(f"pod {pod_name} is not running")
        shells = job.terminals[replica.index]
        term = PtyTerminal.spawn(
            cwd=job.paths.workdir, env=job.env(replica.index), rows=rows, cols=cols,
            on_close=shells.discard,
        )
        shells.add(term)
        return term

    async def watch(self) -> AsyncIterator[JobUpdate]:
        while (update := await self._updates.get()) is not None:
            yield update

    # ---------------------------------------------------------------- scheduling

    def _schedule(self) -> None:
        if self._closed:
            return
        while self._queue and self._active_count() < self._slots:
            best = min(
                self._queue,
                key=lambda i: (-self._jobs[i].spec.priority, self._jobs[i].record.order),
            )
            self._queue.remove(best)
            self._launch(self._jobs[best])

    def _active_count(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state.status in _ACTIVE)

    def _launch(self, job: LiveJob) -> None:
        st = job.state
        st.status = JobStatus.RUNNING
        st.started_at = utcnow()
        st.master_port = _free_port()
        if job.spec.timeout_seconds:
            st.deadline = st.started_at + timedelta(seconds=job.spec.timeout_seconds)
        started = job.add_event(
            "Started", f"started {len(st.replicas)} replica(s) on {self._host}"
        )
        for replica in st.replicas:
            self._spawn(job, replica)
        self._arm_deadline(job)
        self._publish(job, [started])

    def _spawn(self, job: LiveJob, r: ReplicaState) -> None:
        """Start the replica's next attempt."""
        pod = job.pod_name(r.index)
        r.attempt += 1
        r.phase, r.exit_code, r.reason = PodPhase.RUNNING, None, None
        r.started_at, r.finished_at, r.pid, r.start_time = utcnow(), None, None, None
        attempt_dir = job.paths.attempt_dir(pod, r.attempt)
        log_path = job.paths.log(pod)
        try:
            attempt_dir.mkdir(parents=True, exist_ok=True)
            if r.attempt > 1:
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"----- jobgraph: restarting {pod}, attempt {r.attempt} -----\n")
            # Saved before the process exists: a crash right now leaves a replica that
            # recovery reports as vanished instead of one that silently never ran.
            records.save_state(job.paths, job.state)
            proc, ident = spawn_wrapper(
                attempt_dir=attempt_dir, workdir=job.paths.workdir, log_path=log_path,
                argv=job.spec.command, env=job.env(r.index),
            )
        except OSError as exc:
            assert self._loop is not None
            self._loop.call_soon(
                self._on_exit, job, r.index, r.attempt, f"could not be started: {exc}"
            )
            return
        r.pid, r.start_time = ident.pid, ident.start_time
        job.watches[r.index] = watch_child(proc, partial(self._on_exit, job, r.index, r.attempt))

    # ---------------------------------------------------------------- outcomes

    def _on_exit(
        self, job: LiveJob, index: int, attempt: int, failure: str | None = None
    ) -> None:
        if self._closed or self._jobs.get(job.job_id) is not job:
            return  # deleted (its process was only to be reaped) or no longer supervised
        r = job.state.replicas[index]
        if r.attempt != attempt or not r.running:
            return
        job.watches.pop(index, None)
        self._replica_ended(job, r, failure=failure)

    def _replica_ended(self, job: LiveJob, r: ReplicaState, *, failure: str | None = None) -> None:
        st = job.state
        pod = job.pod_name(r.index)
        record = None if failure else read_exit(job.paths.attempt_dir(pod, r.attempt))
        if record is not None:
            r.exit_code, r.finished_at = record.exit_code, record.finished_at
            r.reason = "Completed" if record.exit_code == 0 else (record.reason or "Error")
        elif st.killed:  # our SIGKILL took the wrapper down before it could record
            r.exit_code, r.reason = 128 + signal.SIGKILL, "killed by signal 9 (SIGKILL)"
        else:
            r.exit_code = None
            which = f"its process (pid {r.pid})" if r.pid else "its process"
            r.reason = failure or f"vanished: {which} ended without recording an exit code"
        r.phase = PodPhase.SUCCEEDED if r.exit_code == 0 else PodPhase.FAILED
        r.finished_at = r.finished_at or utcnow()

        events: list[JobEvent] = []
        if r.phase == PodPhase.FAILED and not st.terminating:
            what = _describe_end(pod, r)
            if r.attempt <= job.spec.max_retries:
                events.append(job.add_event(
                    "Retried",
                    f"{what}; restarting it (attempt {r.attempt + 1} of "
                    f"{job.spec.max_retries + 1})",
                    EventType.WARNING,
                ))
                self._spawn(job, r)
                self._publish(job, events)
                return
            st.ending = Outcome(
                status=JobStatus.FAILED, reason=what, exit_code=r.exit_code,
                event_reason="Failed", event_message=what,
            )
            self._terminate(job)  # the other replicas are of no use any more
        self._end_replicas(job, [r.index])
        if job.any_running():
            self._publish(job, events)
        else:
            self._finish(job, events)

    def _finish(self, job: LiveJob, events: list[JobEvent] | None = None) -> None:
        """All replicas are gone: settle the job's final status."""
        st = job.state
        events = list(events or [])
        self._cancel_timers(job)
        if st.ending is not None:
            st.status, st.reason, st.exit_code = st.ending.status, st.ending.reason, \
                st.ending.exit_code
            events.append(job.add_event(
                st.ending.event_reason, st.ending.event_message, st.ending.event_type
            ))
        elif st.stop_requested:
            st.status = JobStatus.STOPPED
            events.append(job.add_event("Stopped", "all replicas have ended"))
        else:
            st.status, st.exit_code = JobStatus.SUCCEEDED, 0
            events.append(job.add_event(
                "Completed", f"all {len(st.replicas)} replica(s) exited with code 0"
            ))
        st.finished_at = max(
            (r.finished_at for r in st.replicas if r.finished_at), default=utcnow()
        )
        self._end_replicas(job, range(len(st.replicas)))
        self._publish(job, events)
        self._schedule()

    def _end_replicas(self, job: LiveJob, indexes: Sequence[int] | range) -> None:
        """These replicas will not run again: wake log followers, close their shells."""
        for i in indexes:
            job.ended[i].set()
            for term in list(job.terminals[i]):
                term.close_now()

    # ---------------------------------------------------------------- stopping

    def _terminate(self, job: LiveJob) -> None:
        """SIGTERM every running replica's process group; SIGKILL after the grace."""
        assert self._loop is not None
        self._signal_all(job, signal.SIGTERM)
        if job.kill_timer is None:
            job.kill_timer = self._loop.call_later(self._grace, self._kill, job)

    def _kill(self, job: LiveJob) -> None:
        job.kill_timer = None
        if self._jobs.get(job.job_id) is not job or job.state.status.is_final:
            return
        job.state.killed = True
        records.save_state(job.paths, job.state)
        self._signal_all(job, signal.SIGKILL)

    def _signal_all(self, job: LiveJob, sig: signal.Signals) -> None:
        for r in job.state.replicas:
            if r.running and r.pid and r.start_time:
                signal_group(ProcessId(r.pid, r.start_time), sig)

    def _arm_deadline(self, job: LiveJob) -> None:
        st = job.state
        if st.deadline is None or st.terminating or job.deadline_timer is not None:
            return
        assert self._loop is not None
        delay = max(0.0, (st.deadline - utcnow()).total_seconds())
        job.deadline_timer = self._loop.call_later(delay, self._deadline_expired, job)

    def _deadline_expired(self, job: LiveJob) -> None:
        job.deadline_timer = None
        st = job.state
        if self._jobs.get(job.job_id) is not job or st.status != JobStatus.RUNNING \
                or st.terminating:
            return
        st.ending = Outcome(
            status=JobStatus.FAILED, reason=DEADLINE_REASON, exit_code=None,
            event_reason=DEADLINE_REASON,
            event_message=f"the job ran longer than {job.spec.timeout_seconds} s; "
                          "all replicas were killed",
        )
        self._kill(job)

    def _cancel_timers(self, job: LiveJob) -> None:
        for timer in (job.deadline_timer, job.kill_timer):
            if timer is not None:
                timer.cancel()
        job.deadline_timer = job.kill_timer = None

    # ---------------------------------------------------------------- recovery

    def _load(self, paths: JobPaths) -> None:
        loaded = records.load(paths)
        if loaded is None:
            return
        record, state, events = loaded
        job = LiveJob(record=record, paths=paths, state=state, events=events)
        self._jobs[record.job_id] = job
        self._next_order = max(self._next_order, record.order + 1)

    def _recover(self, job: LiveJob) -> list[tuple[LiveJob, ReplicaState]]:
        """Re-attach to the job's replicas; returns those that ended meanwhile."""
        st = job.state
        if st.status == JobStatus.QUEUED:
            self._queue.append(job.job_id)
            return []
        if st.status.is_final:
            self._end_replicas(job, range(len(st.replicas)))
            return []
        ended: list[tuple[LiveJob, ReplicaState]] = []
        for r in st.replicas:
            if not r.running:
                self._end_replicas(job, [r.index])
                continue
            attempt_dir = job.paths.attempt_dir(job.pod_name(r.index), r.attempt)
            ident = read_pid(attempt_dir)
            if ident is None and r.pid and r.start_time:
                ident = ProcessId(r.pid, r.start_time)
            watch = None
            if ident is not None:
                r.pid, r.start_time = ident.pid, ident.start_time
                watch = adopt(ident, partial(self._on_exit, job, r.index, r.attempt))
            if watch is None:
                ended.append((job, r))
            else:
                job.watches[r.index] = watch
        return ended

    def _resume(self, job: LiveJob) -> None:
        """Re-arm what was pending for a job still active after recovery."""
        st = job.state
        if st.status not in _ACTIVE:
            return
        if not job.any_running():
            self._finish(job)
        elif st.killed or (st.ending is not None and st.ending.reason == DEADLINE_REASON):
            self._kill(job)
        elif st.terminating:
            self._terminate(job)
        else:
            self._arm_deadline(job)

    def _report_lost(self, job: Job) -> None:
        now = utcnow()
        event = JobEvent(
            job_id=job.job_id, reason="Lost", message=LOST_REASON, type=EventType.WARNING,
            timestamp=now, key="local-lost",
        )
        self._updates.put_nowait(JobUpdate(
            job_id=job.job_id, status=JobStatus.FAILED, reason=LOST_REASON,
            finished_at=now, events=(event,),
        ))

    # ---------------------------------------------------------------- reporting

    def _publish(self, job: LiveJob, events: Sequence[JobEvent]) -> None:
        records.save_state(job.paths, job.state)
        self._updates.put_nowait(job.update(self._host, events))

    # ---------------------------------------------------------------- lookups

    def _require_running(self) -> None:
        if self._loop is None:
            raise RuntimeUnavailable("the local runtime has not been started")
        if self._closed:
            raise RuntimeUnavailable("the local runtime is closed")

    def _get(self, job_id: str) -> LiveJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def _find_pod(self, job_id: str, pod_name: str) -> tuple[LiveJob, ReplicaState]:
        """Only names the runtime generated itself match, so `../x` never reaches a path."""
        job = self._get(job_id)
        for r in job.state.replicas:
            if job.pod_name(r.index) == pod_name:
                return job, r
        raise NotFound(f"pod {pod_name} not found in job {job_id}")


__all__ = ["DEADLINE_REASON", "LOST_REASON", "LocalRuntime"]
