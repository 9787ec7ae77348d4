"""The supervisor: the jobs a LocalRuntime holds, and the lives of their replicas.

A job waits in the slot queue until a slot is free; then all its replicas start, each
through the wrapper (see `process.py`). A replica that fails is restarted while the job
has retries left, otherwise the job fails and its other replicas are stopped. Stopping
sends SIGTERM to every replica's process group, then SIGKILL after the grace; a job
that runs past its deadline is killed at once. Every change is saved to state.json and
published as a full `JobUpdate` snapshot (what an end means for the job's state is
in `outcomes.py`). All of it runs on the runtime's event loop:
process ends and timers arrive as loop callbacks.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from app.domain.errors import Conflict
from app.domain.jobs import EventType, JobEvent, JobSpec, JobStatus, PodPhase, utcnow
from app.runtime.base import JobUpdate
from app.runtime.local import records
from app.runtime.local.layout import JobPaths
from app.runtime.local.livejob import LiveJob
from app.runtime.local.logfile import DEFAULT_MAX_LOG_BYTES
from app.runtime.local.outcomes import (
    deadline_exceeded,
    describe_end,
    record_replica_end,
    replica_failure,
    settle,
)
from app.runtime.local.ports import PortReservations
from app.runtime.local.process import (
    ExitRecord,
    ProcessId,
    read_exit,
    signal_group,
    spawn_wrapper,
    watch_child,
)
from app.runtime.local.procfs import kill_tagged
from app.runtime.local.reasons import WaitingReasons
from app.runtime.local.serial_io import SerialIO, log_failure, nothing
from app.runtime.local.slots import SlotQueue
from app.runtime.local.state import ReplicaState
from app.runtime.local.terminal import PtyTerminal

ACTIVE = (JobStatus.RUNNING, JobStatus.STOPPING)
_DELETE_WAIT_SECONDS = 5.0


class Supervisor:
    """The unfinished jobs by id, the queue of those waiting for a slot, and what happens
    to them. A job leaves `jobs` once its final state is saved (see `_saved`)."""

    def __init__(
        self, *, slots: int, host: str, grace: float,
        updates: asyncio.Queue[JobUpdate | None], io: SerialIO,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        self.max_log_bytes = max_log_bytes  # of one replica's log on disk
        self.jobs: dict[str, LiveJob] = {}
        self.queue = SlotQueue(slots)
        self.reasons = WaitingReasons(slots)
        self.host = host
        self.grace = grace
        self.closed = False
        self.ports = PortReservations()
        self.io = io
        self._updates = updates

    # ---------------------------------------------------------------- jobs

    def admit(self, job: LiveJob) -> None:
        """A job just recorded: announce it and queue it for a slot."""
        self.jobs[job.job_id] = job
        created = f"job recorded with {job.spec.replicas} replica(s)"
        if job.spec.image:
            created += f"; image {job.spec.image!r} is recorded but not used by the local runtime"
        events = [
            job.add_event("Created", created),
            job.add_event("Queued", f"waiting for one of {self.queue.slots} job slot(s)"),
        ]
        self.queue.append(job)
        self.reasons.touch(job)
        self.publish(job, events, durable=False)
        self.schedule()

    # ---------------------------------------------------------------- steering

    def hold(self, job: LiveJob) -> None:
        """Keep a queued job from starting; it keeps its place in the queue."""
        self._require_queued(job, "held")
        if job.held:
            return
        job.held = True
        self.reasons.now(job, self._running())
        self.publish(job, [job.add_event("Held", "kept from starting until released")])
        self.schedule()

    def release(self, job: LiveJob) -> None:
        """Let a held job start again, in its place (its arrival is unchanged)."""
        self._require_queued(job, "released")
        if not job.held:
            # The core may have cleared its reason when it released it: say it again.
            if job.pending is not None:
                self._report_reason(job)
            return
        job.held = False
        self.reasons.now(job, self._running())
        self.publish(job, [job.add_event("Released", "back in its place in the queue")])
        self.schedule()

    def reorder(self, job: LiveJob, spec: JobSpec) -> None:
        """A queued job's new priority and queue; the next pick goes by them."""
        self._require_queued(job, "re-ordered")
        old = job.spec
        if (old.priority, old.queue) == (spec.priority, spec.queue):
            return
        job.record = replace(
            job.record, spec=replace(old, priority=spec.priority, queue=spec.queue)
        )
        event = job.add_event(
            "Updated", f"priority {old.priority} -> {spec.priority}, "
            f"queue {old.queue} -> {spec.queue}",
        )
        self.publish(job, [event])
        self.schedule()

    @staticmethod
    def _require_queued(job: LiveJob, what: str) -> None:
        status = job.state.status
        if status != JobStatus.QUEUED:
            raise Conflict(
                f"job {job.job_id} is {status.value}: only a waiting job can be {what}"
            )

    def stop(self, job: LiveJob) -> None:
        st = job.state
        if st.status.is_final or st.terminating:
            return
        if st.status == JobStatus.QUEUED:
            self.queue.remove(job)
            st.stop_requested = True
            st.status = JobStatus.STOPPED
            st.finished_at = utcnow()
            for ended in job.ended:
                ended.set()
            self.publish(job, [job.add_event("Stopped", "stopped before it started")])
            return
        st.stop_requested = True
        st.status = JobStatus.STOPPING
        self.cancel_timers(job)
        event = job.add_event("Stopping", f"sending SIGTERM; SIGKILL after {self.grace:g} s")
        self.publish(job, [event])
        self.terminate(job)
        if not job.any_running():
            self.finish(job)

    async def remove(self, job: LiveJob) -> list[int]:
        """Forget the job and SIGKILL its processes; waits a while for them to end.
        Returns the pids of those that did not."""
        # From now on its process ends are only reaped. A finished job may be one read
        # back from its files (see `forget`), no longer in the table.
        self.jobs.pop(job.job_id, None)
        if not job.state.status.is_final:  # a final job's port went back when it ended
            self.ports.release(job.state.master_port)
        self.queue.discard(job)
        self.cancel_timers(job)
        await self.io.drain()  # a replica that was being started is started (and killed)
        self._signal_all(job, signal.SIGKILL)
        self.end_replicas(job, range(len(job.state.replicas)))
        watches = list(job.watches.values())
        if watches:
            waiters = [asyncio.ensure_future(w.wait()) for w in watches]
            try:
                await asyncio.wait(waiters, timeout=_DELETE_WAIT_SECONDS)
            finally:  # a replica that outlives the wait must not leave its waiter behind
                for waiter in waiters:
                    waiter.cancel()
        left = [w.pid for w in watches if not w.ended]
        for watch in watches:
            if not watch.ended:
                watch.close()
        # Processes the job started outside its process group (setsid, daemons) still
        # carry its id in their environment.
        left += await asyncio.to_thread(
            kill_tagged, f"JOBGRAPH_JOB_ID={job.job_id}", timeout=_DELETE_WAIT_SECONDS
        )
        return left

    async def close(self) -> None:
        """Stop supervising; replicas keep running, for the next `start` to adopt."""
        self.closed = True
        terminals: list[PtyTerminal] = []
        for job in self.jobs.values():
            self.cancel_timers(job)
            for watch in job.watches.values():
                watch.close()
            job.watches.clear()
            for ended in job.ended:
                ended.set()  # log followers finish what is written and stop
            for shells in job.terminals:
                terminals += shells
        for term in terminals:
            await term.close()

    def publish(self, job: LiveJob, events: Sequence[JobEvent], *, durable: bool = True) -> None:
        """Save the job's state, then report it (in order, once it is written)."""
        if self.closed or self.jobs.get(job.job_id) is not job:
            # Closed: the I/O thread is gone (a spawn that ends during shutdown); the job's
            # files are read back at the next start. Deleted: nothing to report.
            return
        update = job.update(self.host, events)
        final = job.state.status.is_final
        self.save(job, durable=durable).add_done_callback(partial(self._saved, job, update, final))

    def _saved(
        self, job: LiveJob, update: JobUpdate, final: bool, saved: asyncio.Future[None]
    ) -> None:
        """A state is on disk: report it. A final one is the job's last: its files now
        tell all there is, so it leaves the table (else every finished job would stay
        in memory for good)."""
        if final and not saved.cancelled() and saved.exception() is None:
            self.forget(job)
        self._updates.put_nowait(update)

    def forget(self, job: LiveJob) -> None:
        """Drop a final job from the table; lookups read it back from its files."""
        if self.jobs.get(job.job_id) is job and job.state.status.is_final:
            del self.jobs[job.job_id]

    def save(self, job: LiveJob, *, durable: bool = True) -> asyncio.Future[None]:
        """state.json and the new events, written off the loop, in order.

        Every state is replaced atomically; `durable` ones are fsync'd too. Only the
        states of a job's start (queued, starting, running) are not: they are the hot
        path of a submit (an fsync costs 5-40 ms on a busy disk, and the I/O thread is
        serial), and losing them needs a crash of the machine, which ends the replicas
        anyway: the job then reads back as queued (job.json is durable) or with its
        replicas vanished, and recovery runs or settles it. A stop, a kill, a retry and
        an end are written durably: what they decided must survive exactly."""
        events, job.unsaved_events = job.unsaved_events, []
        saved = self.io.submit(
            partial(records.save, durable=durable), job.paths, job.state.to_dict(), events
        )
        saved.add_done_callback(log_failure("local.save_failed", job_id=job.job_id))
        return saved

    # ---------------------------------------------------------------- scheduling

    def schedule(self) -> None:
        if self.closed:
            return
        while (job := self.queue.pop_next(running=self._active_count())) is not None:
            self._launch(job)
        for waiting in self.reasons.changed(self._running(), self.queue):
            self._report_reason(waiting)

    def _running(self) -> list[LiveJob]:
        """The jobs taking a slot."""
        return [j for j in self.jobs.values() if j.state.status in ACTIVE]

    def _active_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state.status in ACTIVE)

    def _report_reason(self, job: LiveJob) -> None:
        """Report a new reason, after whatever of the job is still being saved (the
        I/O thread runs in order): it must not be overtaken by an older snapshot."""
        update = job.reason_update()

        def report(_: asyncio.Future[None]) -> None:
            if self.jobs.get(job.job_id) is job and not self.closed:
                self._updates.put_nowait(update)

        self.io.submit(nothing).add_done_callback(report)

    def _launch(self, job: LiveJob) -> None:
        st = job.state
        st.status = JobStatus.RUNNING
        st.started_at = utcnow()
        st.master_port = self.ports.take()
        if job.spec.timeout_seconds:
            st.deadline = st.started_at + timedelta(seconds=job.spec.timeout_seconds)
        started = job.add_event(
            "Started", f"started {len(st.replicas)} replica(s) on {self.host}"
        )
        spawns = [self._spawn(job, replica) for replica in st.replicas]
        self.arm_deadline(job)
        # Reported once the replicas exist: the state then records their pids.
        asyncio.gather(*spawns, return_exceptions=True).add_done_callback(
            lambda _: self.publish(job, [started], durable=False)
        )

    def _spawn(self, job: LiveJob, r: ReplicaState) -> asyncio.Future[Any]:
        """Start the replica's next attempt (off the loop; `_spawned` takes it over)."""
        pod = job.pod_name(r.index)
        r.attempt += 1
        r.phase, r.exit_code, r.reason = PodPhase.RUNNING, None, None
        r.started_at, r.finished_at, r.pid, r.start_time = utcnow(), None, None, None
        events, job.unsaved_events = job.unsaved_events, []
        started = self.io.submit(
            _start_replica, job.paths, job.state.to_dict(), events,
            job.paths.attempt_dir(pod, r.attempt), job.paths.log(pod),
            f"----- jobgraph: restarting {pod}, attempt {r.attempt} -----\n" if r.attempt > 1 else None,
            job.spec.command, job.env(r.index), self.max_log_bytes,
        )
        started.add_done_callback(partial(self._spawned, job, r.index, r.attempt))
        return started

    def _spawned(
        self, job: LiveJob, index: int, attempt: int,
        started: asyncio.Future[tuple[subprocess.Popen[bytes], ProcessId]],
    ) -> None:
        r = job.state.replicas[index]
        try:
            proc, ident = started.result()
        except OSError as exc:
            self.on_exit(job, index, attempt, f"could not be started: {exc}")
            return
        if r.attempt != attempt:
            return
        r.pid, r.start_time = ident.pid, ident.start_time
        if self.closed:
            return  # not supervised any more; the next `start` adopts it
        job.watches[index] = watch_child(proc, partial(self.on_exit, job, index, attempt))
        # What came while it was starting applies to it too (the wrapper has its stop
        # signals blocked until its handlers are in place, so none is lost).
        if self.jobs.get(job.job_id) is not job or job.state.killed:
            signal_group(ident, signal.SIGKILL)
        elif job.state.terminating:
            signal_group(ident, signal.SIGTERM)

    # ---------------------------------------------------------------- outcomes

    def on_exit(
        self, job: LiveJob, index: int, attempt: int, failure: str | None = None
    ) -> None:
        """The process of the replica's `attempt` has ended (or could not start)."""
        if not self._still_running(job, index, attempt):
            return
        job.watches.pop(index, None)
        if failure is not None:
            self.replica_ended(job, job.state.replicas[index], failure=failure)
            return
        # What the wrapper recorded is read off the loop; the end is settled after.
        attempt_dir = job.paths.attempt_dir(job.pod_name(index), attempt)
        read = self.io.submit(read_exit, attempt_dir)
        read.add_done_callback(partial(self._exit_read, job, index, attempt))

    def _exit_read(
        self, job: LiveJob, index: int, attempt: int, read: asyncio.Future[ExitRecord | None]
    ) -> None:
        if not self._still_running(job, index, attempt):
            return
        record = None if read.cancelled() or read.exception() else read.result()
        self.replica_ended(job, job.state.replicas[index], record=record)

    def _still_running(self, job: LiveJob, index: int, attempt: int) -> bool:
        """The replica's `attempt` is the one supervised (not deleted, closed, replaced
        or already ended)."""
        if self.closed or self.jobs.get(job.job_id) is not job:
            return False  # deleted (its process was only to be reaped) or no longer supervised
        r = job.state.replicas[index]
        return r.attempt == attempt and r.running

    def replica_ended(
        self, job: LiveJob, r: ReplicaState, *, failure: str | None = None,
        record: ExitRecord | None = None,
    ) -> None:
        st = job.state
        record_replica_end(job, r, failure, record)
        events: list[JobEvent] = []
        if r.phase == PodPhase.FAILED and not st.terminating:
            what = describe_end(job.pod_name(r.index), r)
            if r.attempt <= job.spec.max_retries:
                events.append(job.add_event(
                    "Retried",
                    f"{what}; restarting it (attempt {r.attempt + 1} of "
                    f"{job.spec.max_retries + 1})",
                    EventType.WARNING,
                ))
                self._spawn(job, r).add_done_callback(lambda _: self.publish(job, events))
                return
            st.ending = replica_failure(what, r)
            self.terminate(job)  # the other replicas are of no use any more
        self.end_replicas(job, [r.index])
        if job.any_running():
            self.publish(job, events)
        else:
            self.finish(job, events)

    def finish(self, job: LiveJob, events: list[JobEvent] | None = None) -> None:
        """All replicas are gone: settle the job's final status."""
        events = list(events or [])
        self.cancel_timers(job)
        self.ports.release(job.state.master_port)
        events.append(settle(job))
        self.end_replicas(job, range(len(job.state.replicas)))
        self.publish(job, events)
        self.schedule()

    def end_replicas(self, job: LiveJob, indexes: Sequence[int] | range) -> None:
        """These replicas will not run again: wake log followers, close their shells."""
        for i in indexes:
            job.ended[i].set()
            for term in list(job.terminals[i]):
                term.close_now()

    # ---------------------------------------------------------------- stopping

    def terminate(self, job: LiveJob) -> None:
        """SIGTERM every running replica's process group; SIGKILL after the grace."""
        self._signal_all(job, signal.SIGTERM)
        if job.kill_timer is None:
            job.kill_timer = asyncio.get_running_loop().call_later(self.grace, self.kill, job)

    def kill(self, job: LiveJob) -> None:
        job.kill_timer = None
        if self.jobs.get(job.job_id) is not job or job.state.status.is_final:
            return
        job.state.killed = True
        self.save(job)
        self._signal_all(job, signal.SIGKILL)

    def _signal_all(self, job: LiveJob, sig: signal.Signals) -> None:
        for r in job.state.replicas:
            if r.running and r.pid and r.start_time:
                signal_group(ProcessId(r.pid, r.start_time), sig)

    def arm_deadline(self, job: LiveJob) -> None:
        st = job.state
        if st.deadline is None or st.terminating or job.deadline_timer is not None:
            return
        delay = max(0.0, (st.deadline - utcnow()).total_seconds())
        job.deadline_timer = asyncio.get_running_loop().call_later(
            delay, self._deadline_expired, job
        )

    def _deadline_expired(self, job: LiveJob) -> None:
        job.deadline_timer = None
        st = job.state
        if self.jobs.get(job.job_id) is not job or st.status != JobStatus.RUNNING \
                or st.terminating:
            return
        st.ending = deadline_exceeded(job)
        self.kill(job)

    def cancel_timers(self, job: LiveJob) -> None:
        for timer in (job.deadline_timer, job.kill_timer):
            if timer is not None:
                timer.cancel()
        job.deadline_timer = job.kill_timer = None


def _start_replica(
    paths: JobPaths, state: dict[str, Any], events: list[JobEvent], attempt_dir: Path,
    log_path: Path, restart_note: str | None, argv: Sequence[str], env: dict[str, str],
    log_max_bytes: int,
) -> tuple[subprocess.Popen[bytes], ProcessId]:
    """Blocking (run on the runtime's I/O thread): the attempt's directory, the log's
    restart line, the state, then the wrapper process."""
    attempt_dir.mkdir(parents=True, exist_ok=True)
    if restart_note:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(restart_note)
    # Saved before the process exists: a crash right now leaves a replica that
    # recovery reports as vanished instead of one that silently never ran. Not fsync'd
    # (see `Supervisor.save`): a crash of the process keeps what was written.
    records.save(paths, state, events, durable=False)
    return spawn_wrapper(
        attempt_dir=attempt_dir, workdir=paths.workdir, log_path=log_path,
        log_max_bytes=log_max_bytes, argv=argv, env=env,
    )
