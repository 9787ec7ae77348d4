"""The sync task: applies each runtime's reported changes to the job rows and publishes
them on the broker. Subscriptions listen there; reads come from the database.

An update is retried (backoff with jitter) until the database takes it, in order: a job
whose final status came while the database was away is not left RUNNING. Updates that
queue up (a burst of jobs, an outage) are applied in batches, one transaction each, so
the database catches up instead of falling further behind. The task is supervised: if
it crashes, it is logged and started again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from app.core.broker import Broker
from app.core.supervision import supervised
from app.domain.errors import DatabaseUnavailable
from app.domain.jobs import WAITING_STATUSES, Job, JobStatus, PendingReason, utcnow
from app.domain.queueing import SUBMITTING
from app.domain.usage import FinishedJob
from app.runtime.base import JobUpdate, Runtime
from app.store.db import Database, after_commit
from app.store.events import EventRepository
from app.store.jobs import JobRepository, PodRepository
from app.store.usage import UsageRepository

log = structlog.get_logger(__name__)
RETRY_MAX_SECONDS = 5.0
T = TypeVar("T")
# Updates applied in one transaction at most (those already waiting when one is taken).
MAX_BATCH = 100


def merge(job: Job, update: JobUpdate) -> Job:
    """The job after the update; a status the job may not take is ignored."""
    changes: dict[str, Any] = {}
    if update.status is not None and update.status != job.status and job.status.accepts(update.status):
        changes["status"] = update.status
        if update.reason is not None or update.status.is_final:
            changes["reason"] = update.reason
        if update.exit_code is not None:
            changes["exit_code"] = update.exit_code
        if update.finished_at is not None:
            changes["finished_at"] = update.finished_at
    elif (
        update.status is not None and update.status == job.status
        and not job.status.is_final and update.reason != job.reason
    ):
        # The same status for a new reason (e.g. PENDING, now ImagePullBackOff): keep it current.
        changes["reason"] = update.reason
    if update.started_at is not None and job.started_at is None:
        changes["started_at"] = update.started_at
    reason = _pending_reason(job, update, changes.get("status", job.status))
    if reason != job.pending_reason:
        changes["pending_reason"] = reason
    return replace(job, **changes) if changes else job


def _pending_reason(job: Job, update: JobUpdate, status: JobStatus) -> PendingReason | None:
    """Why the job waits after the update: none once it no longer waits; a new code
    starts its own `since`, the same code keeps it (with the newest message)."""
    if status not in WAITING_STATUSES:
        return None
    reported, current = update.pending_reason, job.pending_reason
    if reported is None:
        # Any word from the runtime about the job means it has accepted it.
        return None if current is not None and current.code == SUBMITTING else current
    if current is not None and current.code == reported.code:
        return replace(current, message=reported.message)
    return reported


async def ready_batches(source: AsyncIterator[T], *, limit: int) -> AsyncIterator[list[T]]:
    """The source's items in order, in lists: each as soon as one is there, with those
    that are already waiting behind it (up to `limit`). Never waits to fill a list."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            batch = [await (pending if pending is not None else anext(source))]
            pending = None
            while len(batch) < limit:
                pending = asyncio.ensure_future(anext(source))
                await asyncio.sleep(0)  # one step: an item already waiting is taken in it
                if not pending.done():
                    break
                batch.append(pending.result())
                pending = None
            yield batch
    except StopAsyncIteration:
        return
    finally:
        if pending is not None:
            pending.cancel()


class RuntimeSync:
    def __init__(
        self, *, db: Database, broker: Broker,
        on_finished: Callable[[FinishedJob], None] | None = None,
    ) -> None:
        self.db = db
        self.broker = broker
        # Told once per job, when it reaches a final status (the usage counters).
        self.on_finished = on_finished
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, runtime: Runtime) -> None:
        name = f"sync:{runtime.pool.id}"
        self._tasks.append(supervised(name, lambda: self._consume(runtime)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _consume(self, runtime: Runtime) -> None:
        pool = runtime.pool.id
        async for batch in ready_batches(runtime.watch(), limit=MAX_BATCH):
            try:
                await self.apply_retrying(batch, pool=pool)
            except Exception:
                if len(batch) == 1:
                    log.exception("sync.apply_failed", job_id=batch[0].job_id, pool=pool)
                    continue
                # One bad update must not take the others with it: each on its own.
                for update in batch:
                    try:
                        await self.apply_retrying([update], pool=pool)
                    except Exception:
                        log.exception("sync.apply_failed", job_id=update.job_id, pool=pool)

    async def apply_retrying(self, updates: Sequence[JobUpdate], *, pool: str) -> None:
        """Apply the updates, waiting out a database that is away (however long)."""

        def waiting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "sync.apply_retry", job_id=updates[0].job_id, updates=len(updates), pool=pool,
                attempt=state.attempt_number, error=str(error)[:200],
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(DatabaseUnavailable),
            wait=wait_random_exponential(multiplier=0.2, max=RETRY_MAX_SECONDS),
            before_sleep=waiting,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.apply(*updates)

    async def apply(self, *updates: JobUpdate) -> None:
        """The updates in order, in one transaction: when they queue up (a burst of
        jobs, a database that was away), one commit carries many."""
        async with self.db.transaction() as session:
            for update in updates:
                await self._apply_one(session, update)

    async def _apply_one(self, session: AsyncSession, update: JobUpdate) -> None:
        jobs = JobRepository(session)
        job = await jobs.get(update.job_id, for_update=True)
        if job is None:
            return  # deleted meanwhile
        updated = merge(job, update)
        if updated is not job:
            await jobs.save_state(updated)
        if update.pods is not None:
            await PodRepository(session).replace(job.job_id, update.pods)
        if updated.status.is_final and not job.status.is_final:
            await self._finished(session, updated)
        new_events = await EventRepository(session).add_new(update.events)
        if updated is not job or update.pods is not None:
            await self.broker.publish_job(updated, within=session)
        for event in new_events:
            await self.broker.publish_event(event, within=session)

    async def _finished(self, session: AsyncSession, job: Job) -> None:
        """The job has just ended, in this transaction. It is read under a row lock and
        only a non-final job can end, so exactly one transaction ever gets here for a job
        (across retries of the update and across replicas of the server); the counters
        move once it has committed, never for one that rolled back."""
        if self.on_finished is None:
            return
        gpu, cpu = await UsageRepository(session).job_seconds(job.job_id, now=utcnow())
        finished = FinishedJob(
            pool_id=job.resource_pool_id, queue=job.queue, owner=job.owner,
            status=job.status.value, gpu_seconds=gpu, cpu_seconds=cpu,
        )
        after_commit(session, partial(self.on_finished, finished))
