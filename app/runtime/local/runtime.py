"""LocalRuntime: runs jobs as real processes on this machine.

Its state lives in files under `root` (see `layout.py`), so a new server can pick up
where the last one stopped: replicas keep running while no server supervises them.
All methods run on one event loop; process ends and timers arrive as loop callbacks.

This module is the port (the `Runtime` protocol) and its wiring: what happens to jobs
once accepted is in `supervisor.py` (slots in `slots.py`, outcomes in `outcomes.py`),
taking over an earlier server's jobs in `recovery.py`.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from app.domain.errors import Conflict, NotFound, RuntimeUnavailable, ValidationFailed
from app.domain.jobs import Job, JobStatus, Resources
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate, Terminal
from app.runtime.local import records, recovery
from app.runtime.local.layout import JOB_ID, JobPaths
from app.runtime.local.livejob import LiveJob
from app.runtime.local.logfile import DEFAULT_MAX_LOG_BYTES
from app.runtime.local.logs import read_lines
from app.runtime.local.outcomes import DEADLINE_REASON
from app.runtime.local.recovery import LOST_REASON
from app.runtime.local.serial_io import SerialIO
from app.runtime.local.state import ReplicaState
from app.runtime.local.supervisor import Supervisor
from app.runtime.local.terminal import PtyTerminal

DEFAULT_SLOTS = 4


async def _nothing() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover  (makes this an async generator)


class LocalRuntime:
    """The `Runtime` for pools with `runtime: local`."""

    def __init__(
        self, pool: ResourcePool, *, root: Path, stop_grace_seconds: float = 10.0,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        self.pool = pool
        self._root = Path(root)
        self._host = socket.gethostname()
        self._next_order = 0  # arrival order of the next job (recovery goes by it)
        # The newest word (hold, release, reorder) about a job not admitted yet: it is
        # being recorded by `submit`, which applies this once it is.
        self._told: dict[str, Job] = {}
        self._updates: asyncio.Queue[JobUpdate | None] = asyncio.Queue()
        self._started = False
        slots = pool.max_concurrent_jobs if pool.max_concurrent_jobs is not None \
            else DEFAULT_SLOTS
        self._io = SerialIO(pool.id)
        self._supervisor = Supervisor(
            slots=slots, host=self._host, grace=stop_grace_seconds, updates=self._updates,
            io=self._io,
            max_log_bytes=max_log_bytes,
        )

    # ---------------------------------------------------------------- lifecycle

    async def start(self, active_jobs: Sequence[Job]) -> None:
        if self._started:
            raise Conflict("the local runtime is already started")
        self._started = True
        sup = self._supervisor
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
        loaded_jobs = await asyncio.to_thread(recovery.load_jobs, self._root)
        in_database = {job.job_id: job for job in active_jobs}
        for loaded in loaded_jobs:
            sup.jobs[loaded.job_id] = loaded
            self._next_order = max(self._next_order, loaded.record.order + 1)
            if loaded.job_id in in_database:
                # The database holds what was decided while no server ran it: whether
                # it is held, its priority and queue (job.json keeps them as submitted).
                _steer(loaded, in_database[loaded.job_id])
        final_on_disk = {j.job_id for j in loaded_jobs if j.state.status.is_final}
        recovery.reattach(sup)

        for job in active_jobs:
            if job.job_id in sup.jobs:
                continue
            if job.status == JobStatus.PENDING:
                await self.submit(job)
            else:
                self._updates.put_nowait(recovery.lost_update(job))
        # Full snapshots with every stored event of the jobs the database still has active:
        # it converges even if some updates were lost while the server went down (events
        # are keyed: no duplicates). A job the database has as ended got its last update,
        # events included, in one transaction: nothing of it is sent again.
        unfinished = {job.job_id for job in active_jobs}
        for live in sorted(sup.jobs.values(), key=lambda j: j.record.order):
            if live.job_id in unfinished:
                self._updates.put_nowait(live.update(self._host, live.events))
        # Those that had ended before are read from their files when asked for; those
        # that ended during recovery leave once their final state is saved.
        for loaded in loaded_jobs:
            if loaded.job_id in final_on_disk:
                sup.forget(loaded)
        sup.schedule()

    async def close(self) -> None:
        """Stop supervising; replicas keep running, for the next `start` to adopt."""
        if self._supervisor.closed:
            return
        await self._supervisor.close()
        await self._io.drain()  # what was saved is on disk, and reported, before the end
        self._io.close()
        self._updates.put_nowait(None)

    # ---------------------------------------------------------------- the port

    def validate(self, job: Job) -> None:
        """Every valid spec runs here (the image is recorded, not used)."""

    async def submit(self, job: Job) -> None:
        self._require_running()
        if job.job_id in self._supervisor.jobs:
            return  # already accepted: submitting again is harmless
        if not JOB_ID.match(job.job_id):
            raise ValidationFailed(f"invalid job id {job.job_id!r}", field="jobId")
        paths = JobPaths(self._root / job.job_id)
        order = self._next_order
        self._next_order += 1  # taken now: another submit may run while this one waits
        state = records.new_state(job.spec.replicas)
        try:
            recorded = await self._io.submit(_record, paths, job, order, state.to_dict())
        except OSError as exc:
            raise RuntimeUnavailable(f"local runtime cannot record the job: {exc}") from exc
        finally:
            told = self._told.pop(job.job_id, job)  # a hold or reorder that came meanwhile
        if not recorded or job.job_id in self._supervisor.jobs or self._supervisor.closed:
            return  # it ran already, submitted twice at once, or closed meanwhile
        record = records.JobRecord(job.job_id, job.owner, job.spec, order, job.created_at)
        live = LiveJob(record=record, paths=paths, state=state, events=[])
        _steer(live, told)
        self._supervisor.admit(live)

    async def hold(self, job: Job) -> None:
        self._steering(job, self._supervisor.hold, held=True)

    async def release(self, job: Job) -> None:
        self._steering(job, self._supervisor.release, held=False)

    async def reorder(self, job: Job) -> None:
        self._steering(job, lambda live: self._supervisor.reorder(live, job.spec))

    def _steering(
        self, job: Job, act: Callable[[LiveJob], None], *, held: bool | None = None
    ) -> None:
        """Apply a hold, release or reorder to the job; one still being recorded by
        `submit` gets it once admitted. Conflict once the job has started or ended."""
        self._require_running()
        live = self._supervisor.jobs.get(job.job_id)
        if live is not None:
            act(live)
        elif job.status.is_final or job.status in (JobStatus.RUNNING, JobStatus.STOPPING):
            raise Conflict(f"job {job.job_id} is {job.status.value}: it no longer waits")
        else:
            earlier = self._told.get(job.job_id, job)
            self._told[job.job_id] = replace(job, held=earlier.held if held is None else held)

    async def queue_positions(self, jobs: Sequence[Job]) -> dict[str, int] | None:
        """None: the core computes local positions exactly, from the database, in the
        same order as the slot queue (`app.domain.queueing.start_key`)."""
        return None

    async def largest_node(self) -> Resources | None:
        """Not applicable: a local pool is one machine, bounded by its pool capacity."""
        return None

    async def stop(self, job_id: str) -> None:
        self._require_running()
        self._supervisor.stop(await self._get(job_id))

    async def delete(self, job_id: str) -> None:
        self._require_running()
        job = await self._get(job_id)
        left = await self._supervisor.remove(job)
        self._supervisor.schedule()
        if left:
            # Its files may still be in use: removing them would pull them from under it.
            raise RuntimeUnavailable(
                f"job {job_id}: processes {', '.join(map(str, sorted(left)))} did not end "
                f"after SIGKILL; its directory {job.paths.dir} is kept"
            )
        # On the I/O thread, after any save of the job still queued there.
        await self._io.submit(shutil.rmtree, job.paths.dir, True)

    def logs(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        if tail_lines is not None and tail_lines < 0:
            raise ValidationFailed("tailLines must not be negative", field="tailLines")
        live = self._supervisor.jobs.get(job_id)
        if live is None:  # finished (or unknown): its files are read first, off the loop
            return self._logs_of_finished(job_id, pod_name, tail_lines=tail_lines)
        return self._pod_lines(
            live, _pod_of(live, pod_name), tail_lines=tail_lines, follow=follow
        )

    async def _logs_of_finished(
        self, job_id: str, pod_name: str, *, tail_lines: int | None
    ) -> AsyncIterator[str]:
        job, replica = await self._find_pod(job_id, pod_name)
        # Its replicas have all ended: following ends at the end of what is written.
        async for line in self._pod_lines(job, replica, tail_lines=tail_lines, follow=False):
            yield line

    @staticmethod
    def _pod_lines(
        job: LiveJob, replica: ReplicaState, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
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
        job, replica = await self._find_pod(job_id, pod_name)
        if not replica.running:
            raise Conflict(f"pod {pod_name} is not running")
        shells = job.terminals[replica.index]
        term = await PtyTerminal.spawn(
            cwd=job.paths.workdir, env=job.env(replica.index), rows=rows, cols=cols,
            on_close=shells.discard,
        )
        if not replica.running or self._supervisor.closed:  # it ended while the shell started
            await term.close()
            raise Conflict(f"pod {pod_name} is not running")
        shells.add(term)
        return term

    async def watch(self) -> AsyncIterator[JobUpdate]:
        while (update := await self._updates.get()) is not None:
            yield update

    # ---------------------------------------------------------------- lookups

    def _require_running(self) -> None:
        if not self._started:
            raise RuntimeUnavailable("the local runtime has not been started")
        if self._supervisor.closed:
            raise RuntimeUnavailable("the local runtime is closed")

    async def _get(self, job_id: str) -> LiveJob:
        """A job the supervisor holds, or else a finished one read back from its files
        (on the I/O thread, so after any save of it still queued there)."""
        job = self._supervisor.jobs.get(job_id)
        if job is not None:
            return job
        if JOB_ID.match(job_id):
            loaded = await self._io.submit(recovery.load_job, JobPaths(self._root / job_id))
            # One not final here would be one this runtime does not supervise (deleted
            # meanwhile, or written by someone else): unknown.
            if loaded is not None and loaded.state.status.is_final:
                return loaded
        raise NotFound(f"job {job_id} not found")

    async def _find_pod(self, job_id: str, pod_name: str) -> tuple[LiveJob, ReplicaState]:
        job = await self._get(job_id)
        return job, _pod_of(job, pod_name)


def _pod_of(job: LiveJob, pod_name: str) -> ReplicaState:
    """Only names the runtime generated itself match, so `../x` never reaches a path."""
    for r in job.state.replicas:
        if job.pod_name(r.index) == pod_name:
            return r
    raise NotFound(f"pod {pod_name} not found in job {job.job_id}")


def _steer(live: LiveJob, job: Job) -> None:
    """Take the held flag, priority and queue the core decided for a job (before it is
    queued: no event, nothing reported)."""
    live.held = job.held
    spec = live.spec
    if (spec.priority, spec.queue) != (job.spec.priority, job.spec.queue):
        live.record = replace(
            live.record, spec=replace(spec, priority=job.spec.priority, queue=job.spec.queue)
        )


def _record(paths: JobPaths, job: Job, order: int, state: dict[str, object]) -> bool:
    """The job's directory, job.json and its first state (blocking: on the I/O thread).
    False when a complete job.json is there already: the job ran and has finished (the
    supervisor no longer holds it), running it again would wipe its files."""
    if records.load(paths) is not None:
        return False
    if paths.dir.exists():  # leftovers of a submit that crashed before job.json
        shutil.rmtree(paths.dir)
    paths.create([f"{job.job_id}-{i}" for i in range(job.spec.replicas)])
    records.write_job(paths, job, order=order)  # durable: the record that the job exists
    records.save(paths, state, [], durable=False)  # without it, the job reads back as queued
    return True


__all__ = ["DEADLINE_REASON", "LOST_REASON", "LocalRuntime"]
