"""JobService: every use case on jobs, and who may do it.

Users see and act on their own jobs, admins on all; a job shared with a group can be read
(not acted on) by its members. Another user's job is "not found" so that ids do not leak.
Refused actions are written to the audit trail too."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import NoReturn

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.broker import Broker
from app.core.capacity import ensure_fits
from app.core.log_window import LogWindow
from app.core.pools import PoolCatalog
from app.core.positions import queue_positions
from app.core.runtimes import RuntimeRegistry
from app.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    RuntimeUnavailable,
    ValidationFailed,
)
from app.domain.jobs import (
    WAITING_STATUSES,
    EventType,
    Job,
    JobEvent,
    JobStatus,
    PendingReason,
    Pod,
    new_job_id,
    utcnow,
)
from app.domain.limits import SizeLimits
from app.domain.listing import Audience, JobFilter, JobPage, PageRequest
from app.domain.principal import Principal
from app.domain.queueing import HELD, HELD_MESSAGE, SUBMITTING, SUBMITTING_MESSAGE
from app.domain.rerun import RerunOverrides, describe, rerun_draft
from app.domain.validation import (
    JobSpecDraft,
    check_groups,
    check_idempotency_key,
    parse_priority,
    validate_spec,
)
from app.store.db import Database
from app.store.events import EventRepository
from app.store.jobs import JobRepository, PodRepository
from app.store.waiting import WaitingRepository

log = structlog.get_logger(__name__)

MAX_LOG_LINES = 100_000


def _check_log_window(tail_lines: int | None, max_lines: int | None) -> None:
    if tail_lines is not None and tail_lines < 0:
        raise ValidationFailed("tailLines must be 0 or more", field="tailLines")
    if max_lines is not None and max_lines < 0:
        raise ValidationFailed("maxLines must be 0 or more", field="maxLines")


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} not found", field="jobId")


def _no_longer_waits(job: Job, what: str) -> Conflict:
    return Conflict(
        f"job {job.job_id!r} is {job.status.value}: only a waiting (PENDING or QUEUED) job "
        f"can be {what}",
        field="jobId",
    )


async def _audit_undone(
    session: AsyncSession, actor: Principal, action: str, job_id: str, error: Exception
) -> None:
    """An action recorded as allowed that the runtime then refused, and was undone."""
    why = error.message if isinstance(error, DomainError) else repr(error)
    await audit.record(
        session, actor=actor, action=action, job_id=job_id, outcome=audit.REFUSED,
        detail=f"undone: the runtime refused it: {why}",
    )


def _pod_not_found(job_id: str, pod_name: str) -> NotFound:
    return NotFound(f"pod {pod_name!r} not found in job {job_id!r}", field="podName")


class JobService:
    def __init__(
        self, *, db: Database, pools: PoolCatalog, runtimes: RuntimeRegistry, broker: Broker,
        limits: SizeLimits = SizeLimits(),
    ) -> None:
        self.limits = limits
        self.db = db
        self.pools = pools
        self.runtimes = runtimes
        self.broker = broker

    # -- reads ---------------------------------------------------------------------------

    async def get(self, *, actor: Principal, job_id: str) -> Job:
        return (await self._readable(actor, job_id, with_pods=False))[0]

    async def get_with_pods(self, *, actor: Principal, job_id: str) -> tuple[Job, list[Pod]]:
        """The job and its pods, in one query."""
        return await self._readable(actor, job_id, with_pods=True)

    async def _readable(self, actor: Principal, job_id: str, *, with_pods: bool) -> tuple[Job, list[Pod]]:
        async with self.db.reader() as session:
            found = await JobRepository(session).get_readable(
                job_id, visible_to=self._scope(actor), with_pods=with_pods
            )
        if found is None:
            raise _not_found(job_id)
        return found

    async def list(self, *, actor: Principal, job_filter: JobFilter, page: PageRequest) -> JobPage:
        async with self.db.reader() as session:
            return await JobRepository(session).list(
                job_filter=job_filter, page=page, visible_to=self._scope(actor)
            )

    async def count(self, *, actor: Principal, job_filter: JobFilter) -> int:
        async with self.db.reader() as session:
            return await JobRepository(session).count(
                job_filter=job_filter, visible_to=self._scope(actor)
            )

    async def count_by_status(self) -> dict[str, int]:
        """All jobs by status (for operators' metrics)."""
        async with self.db.reader() as session:
            counts = await JobRepository(session).count_by_status()
        return {status.value: counts.get(status.value, 0) for status in JobStatus}

    async def pods_of(
        self, *, actor: Principal, job_ids: Sequence[str]
    ) -> dict[str, builtins.list[Pod]]:
        """Pods of the jobs, in one query (a DataLoader batch); jobs the actor may not read
        have none."""
        async with self.db.reader() as session:
            return await PodRepository(session).for_jobs(job_ids, visible_to=self._scope(actor))

    async def events_of(
        self,
        *,
        actor: Principal,
        job_ids: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, builtins.list[JobEvent]]:
        """Events of the jobs within the window, oldest first, in one query (a DataLoader
        batch); jobs the actor may not read have none."""
        if since and until and since > until:
            raise ValidationFailed("startTime must not be after endTime", field="startTime")
        async with self.db.reader() as session:
            return await EventRepository(session).for_jobs(
                list(job_ids), visible_to=self._scope(actor), since=since, until=until
            )

    async def events_in(
        self,
        *,
        actor: Principal,
        job_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[JobEvent]:
        """Events of a job the actor may read, oldest first."""
        events = await self.events_of(actor=actor, job_ids=[job_id], since=since, until=until)
        return events[job_id]

    async def job_logs(
        self,
        *,
        actor: Principal,
        job_id: str,
        pod_name: str,
        tail_lines: int | None = None,
        keyword: str | None = None,
        max_lines: int | None = None,
    ) -> str:
        """The log of a pod of a job the actor may read, as one text:
        the last `tail_lines` lines, of those only the ones containing `keyword`, at most
        `max_lines` of them (the last ones)."""
        _check_log_window(tail_lines, max_lines)
        window = LogWindow(max_bytes=self.limits.log_answer_bytes, max_lines=max_lines)
        async for line in self.follow_logs(
            actor=actor, job_id=job_id, pod_name=pod_name, tail_lines=tail_lines,
            keyword=keyword, follow=False,
        ):
            window.add(line)
        return window.text()

    async def follow_logs(
        self,
        *,
        actor: Principal,
        job_id: str,
        pod_name: str,
        tail_lines: int | None = None,
        keyword: str | None = None,
        follow: bool = True,
    ) -> AsyncGenerator[str, None]:
        """Lines of a pod of a job the actor may read; with `follow`, new ones until the
        pod ends. The job and pod are checked in one query."""
        _check_log_window(tail_lines, None)
        async with self.db.reader() as session:
            found = await PodRepository(session).readable_pod(
                job_id, pod_name, visible_to=self._scope(actor)
            )
        if found is None:
            await self.get(actor=actor, job_id=job_id)  # which one is missing: the job ...
            raise _pod_not_found(job_id, pod_name)  # ... or the pod
        pool_id, _ = found
        tail = MAX_LOG_LINES if tail_lines is None else min(tail_lines, MAX_LOG_LINES)
        if tail == 0 and not follow:
            return
        runtime = self.runtimes.for_pool(pool_id)
        async for line in runtime.logs(job_id, pod_name, tail_lines=tail, follow=follow):
            if keyword is None or keyword in line:
                yield line

    async def require_pod(
        self, *, actor: Principal, job_id: str, pod_name: str, action: str | None = None
    ) -> tuple[Job, Pod]:
        """The job (visible to the actor; with `action`, one the actor may act on) and its
        pod; NotFound when the pod is not one of the job's."""
        if action is None:
            job = await self.get(actor=actor, job_id=job_id)
        else:
            job = await self._for_action(actor=actor, job_id=job_id, action=action)
        return job, await self._pod_of(actor, job, pod_name)

    async def _pod_of(self, actor: Principal, job: Job, pod_name: str) -> Pod:
        """A name that is not one of the job's pods (`../../etc/passwd` included) is simply
        not found: nothing is ever looked up by an unchecked name."""
        async with self.db.reader() as session:
            found = await PodRepository(session).readable_pod(
                job.job_id, pod_name, visible_to=self._scope(actor)
            )
        if found is None:
            raise _pod_not_found(job.job_id, pod_name)
        return found[1]

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        *,
        actor: Principal,
        draft: JobSpecDraft,
        idempotency_key: str | None = None,
        shared_with: tuple[str, ...] = (),
    ) -> Job:
        return await self._create(
            actor=actor, draft=draft, idempotency_key=idempotency_key, shared_with=shared_with
        )

    async def rerun(
        self,
        *,
        actor: Principal,
        job_id: str,
        overrides: RerunOverrides,
        idempotency_key: str | None = None,
    ) -> Job:
        """A new job from an ended job's spec, with `overrides`, through the same path as
        a create. The owner or an admin may; the new job is the caller's, shared with
        no one, and names the old one in `rerun_of`."""
        old = await self._for_action(actor=actor, job_id=job_id, action="job.rerun")
        if not old.status.is_final:
            raise Conflict(
                f"job {job_id!r} is still {old.status.value}; only a job that has ended "
                "(SUCCEEDED, FAILED or STOPPED) can be run again: wait for it or stop it",
                field="jobId",
            )
        return await self._create(
            actor=actor, draft=rerun_draft(old.spec, overrides),
            idempotency_key=idempotency_key, rerun_of=old.job_id,
            action="job.rerun", detail=describe(old.job_id, overrides),
        )

    async def _create(
        self,
        *,
        actor: Principal,
        draft: JobSpecDraft,
        idempotency_key: str | None,
        shared_with: tuple[str, ...] = (),
        rerun_of: str | None = None,
        action: str = "job.create",
        detail: str | None = None,
    ) -> Job:
        key = check_idempotency_key(idempotency_key)
        pool, queue = self.pools.resolve(draft.resource_pool_id, draft.queue)
        if not pool.usable_by(groups=actor.groups, is_admin=actor.is_admin):
            await self._refuse(
                actor, action, rerun_of,
                PermissionDenied(
                    f"pool {pool.id!r} is for the groups {', '.join(pool.allowed_groups)}; "
                    "ask an administrator to add you to one of them",
                    field="resourcePoolId",
                ),
            )
        spec = validate_spec(draft, resource_pool_id=pool.id, queue=queue, limits=self.limits)
        groups = check_groups(shared_with)
        if key is not None:
            existing = await self._by_idempotency_key(actor.user, key)
            if existing is not None:
                return existing
        runtime = self.runtimes.for_pool(pool.id)
        # After the idempotency key: a retry of an accepted create answers its job even if
        # the pool shrank meanwhile.
        await ensure_fits(spec=spec, pool=pool, runtime=runtime)
        job = Job(
            job_id=new_job_id(), owner=actor.user, spec=spec, idempotency_key=key,
            shared_with=groups, rerun_of=rerun_of,
            pending_reason=PendingReason(SUBMITTING, SUBMITTING_MESSAGE),
        )
        runtime.validate(job)
        try:
            async with self.db.transaction() as session:
                await JobRepository(session).add(job)
                await audit.record(
                    session, actor=actor, action=action, job_id=job.job_id, detail=detail
                )
                await self.broker.publish_job(job, within=session)
        except IntegrityError:
            # Two creates with one idempotency key raced; the other one won.
            existing = await self._by_idempotency_key(actor.user, key) if key else None
            if existing is None:
                raise
            return existing
        try:
            await runtime.submit(job)
        except Exception as exc:
            # Never leave a half-created job: it is FAILED, with the reason.
            reason = exc.message if isinstance(exc, DomainError) else f"submit failed: {exc}"
            log.warning("job.submit_failed", job_id=job.job_id, error=str(exc))
            await self._fail_submission(job, reason)
            if isinstance(exc, DomainError):
                raise
            raise RuntimeUnavailable(f"the runtime did not accept the job: {exc}") from exc
        return job

    async def stop(self, *, actor: Principal, job_id: str) -> Job:
        job = await self._for_action(actor=actor, job_id=job_id, action="job.stop")
        if job.status.is_final:
            raise Conflict(
                f"job {job_id!r} has already ended ({job.status.value}); nothing to stop",
                field="jobId",
            )
        if job.status is not JobStatus.STOPPING:
            async with self.db.transaction() as session:
                stopping = await JobRepository(session).mark_stopping(job_id)
                if stopping:
                    await audit.record(session, actor=actor, action="job.stop", job_id=job_id)
                    job = replace(job, status=JobStatus.STOPPING)
                    await self.broker.publish_job(job, within=session)
            if not stopping:
                return await self.stop(actor=actor, job_id=job_id)  # it ended meanwhile
        try:
            await self.runtimes.for_pool(job.resource_pool_id).stop(job_id)
        except NotFound:
            # The runtime never had it (e.g. it failed before submission): end it here.
            job = replace(job, status=JobStatus.STOPPED, finished_at=utcnow())
            async with self.db.transaction() as session:
                await JobRepository(session).save_state(job)
                await self.broker.publish_job(job, within=session)
        return job

    async def delete(self, *, actor: Principal, job_id: str) -> str:
        job = await self._for_action(actor=actor, job_id=job_id, action="job.delete")
        with contextlib.suppress(NotFound):  # nothing left in the runtime; the record still goes
            await self.runtimes.for_pool(job.resource_pool_id).delete(job_id)
        async with self.db.transaction() as session:
            await JobRepository(session).delete(job_id)
            await audit.record(session, actor=actor, action="job.delete", job_id=job_id)
            # Its pool's usage changed (a job that ran or waited is gone).
            await self.broker.publish_pool_change(job.resource_pool_id, within=session)
            await self.broker.publish_job_removed(job_id, within=session)
        return job_id

    async def share(self, *, actor: Principal, job_id: str, groups: tuple[str, ...]) -> Job:
        """Let the members of `groups` read the job (replacing the previous groups)."""
        job = await self._for_action(actor=actor, job_id=job_id, action="job.share")
        groups = check_groups(groups)
        shared = replace(job, shared_with=groups)
        async with self.db.transaction() as session:
            await JobRepository(session).set_shares(job_id, groups)
            await audit.record(
                session, actor=actor, action="job.share", job_id=job_id,
                detail=", ".join(groups) or "(no groups)",
            )
            # Who may read it changed: its new readers' subscriptions and every cached
            # answer about it hear of it.
            await self.broker.publish_job(shared, within=session)
        return shared

    # -- waiting jobs: steer them, see where they stand ----------------------------------

    async def update(
        self, *, actor: Principal, job_id: str, priority: int | str | None = None,
        queue: str | None = None,
    ) -> Job:
        """A waiting job's new priority and/or queue (one of its pool's); it starts in
        the new order."""
        job = await self._for_action(actor=actor, job_id=job_id, action="job.update")
        if priority is None and queue is None:
            await self._refuse(actor, "job.update", job_id, ValidationFailed(
                "nothing to change: give a priority, a queue or both", field="priority"))
        try:
            new_priority = job.spec.priority if priority is None else parse_priority(priority)
            _, new_queue = self.pools.resolve(job.resource_pool_id, queue or job.queue)
        except ValidationFailed as error:
            await self._refuse(actor, "job.update", job_id, error)
        await self._require_waiting(actor, job, "job.update", "re-ordered")
        updated = replace(job, spec=replace(job.spec, priority=new_priority, queue=new_queue))
        detail = f"priority {job.spec.priority} -> {new_priority}, queue {job.queue} -> {new_queue}"
        async with self.db.transaction() as session:
            if waits := await WaitingRepository(session).set_placement(job_id, updated.spec):
                await audit.record(
                    session, actor=actor, action="job.update", job_id=job_id, detail=detail
                )
                await self.broker.publish_job(updated, within=session)
        if not waits:
            await self._refuse_started(actor, job_id, "job.update", "re-ordered")
        try:
            await self.runtimes.for_pool(job.resource_pool_id).reorder(updated)
        except Exception as error:
            # The runtime did not take it (the job started meanwhile, or the runtime is
            # away): the record says what really holds.
            async with self.db.transaction() as session:
                await WaitingRepository(session).set_placement(job_id, job.spec, only_waiting=False)
                await _audit_undone(session, actor, "job.update", job_id, error)
                await self.broker.publish_job(job, within=session)
            raise
        return updated

    async def hold(self, *, actor: Principal, job_id: str) -> Job:
        """Keep a waiting job from starting until it is released."""
        job = await self._for_action(actor=actor, job_id=job_id, action="job.hold")
        await self._require_waiting(actor, job, "job.hold", "held")
        was = job.pending_reason
        # Held again: the reason keeps its `since`.
        reason = was if was and was.code == HELD else PendingReason(HELD, HELD_MESSAGE)
        held = replace(job, held=True, pending_reason=reason)
        async with self.db.transaction() as session:
            if waits := await WaitingRepository(session).set_held(job_id, True, reason=reason):
                await audit.record(session, actor=actor, action="job.hold", job_id=job_id)
                await self.broker.publish_job(held, within=session)
        if not waits:
            await self._refuse_started(actor, job_id, "job.hold", "held")
        try:
            # Told even when already held: a runtime that missed it (it was away) learns it.
            await self.runtimes.for_pool(job.resource_pool_id).hold(held)
        except Exception as error:
            async with self.db.transaction() as session:
                await WaitingRepository(session).undo_hold(job_id)
                await _audit_undone(session, actor, "job.hold", job_id, error)
                current = await JobRepository(session).get(job_id)
                if current is not None:
                    await self.broker.publish_job(current, within=session)
            raise
        return held

    async def release(self, *, actor: Principal, job_id: str) -> Job:
        """Let a held job start again, in its place (its arrival is unchanged)."""
        job = await self._for_action(actor=actor, job_id=job_id, action="job.release")
        await self._require_waiting(actor, job, "job.release", "released")
        # The runtime says why it waits now (e.g. WAITING_FOR_SLOT) once it has it back;
        # a job that was not held keeps its reason.
        released = replace(job, held=False, pending_reason=None) if job.held else job
        async with self.db.transaction() as session:
            waits = not job.held or await WaitingRepository(session).set_held(
                job_id, False, reason=None
            )
            if waits:
                await audit.record(session, actor=actor, action="job.release", job_id=job_id)
                if job.held:
                    await self.broker.publish_job(released, within=session)
        if not waits:
            await self._refuse_started(actor, job_id, "job.release", "released")
        # Told even when not held: a runtime that missed a release (it was away) learns it.
        await self.runtimes.for_pool(job.resource_pool_id).release(released)
        return released

    async def queue_positions(self, *, jobs: Sequence[Job]) -> dict[str, int]:
        """`queuePosition` of jobs already read (a DataLoader's batch); a job that does
        not wait, is held, or whose runtime knows no position is missing."""
        return await queue_positions(db=self.db, runtimes=self.runtimes, jobs=jobs)

    async def _require_waiting(self, actor: Principal, job: Job, action: str, what: str) -> None:
        if job.status not in WAITING_STATUSES:
            await self._refuse(actor, action, job.job_id, _no_longer_waits(job, what))

    async def _refuse_started(
        self, actor: Principal, job_id: str, action: str, what: str
    ) -> NoReturn:
        """The job stopped waiting between the read and the write: say why, audited."""
        async with self.db.reader() as session:
            current = await JobRepository(session).get(job_id)
        error = _no_longer_waits(current, what) if current else _not_found(job_id)
        await self._refuse(actor, action, job_id, error)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _scope(actor: Principal) -> Audience | None:
        return None if actor.is_admin else Audience(actor.user, actor.groups)

    async def _for_action(self, *, actor: Principal, job_id: str, action: str) -> Job:
        """The job, if the actor may act on it; refusals are audited."""
        try:
            job = await self.get(actor=actor, job_id=job_id)
        except NotFound as error:
            await self._refuse(actor, action, job_id, error)
        if not actor.may_act(owner=job.owner):
            await self._refuse(
                actor, action, job_id,
                PermissionDenied(f"job {job_id!r} is shared with you read-only", field="jobId"),
            )
        return job

    async def _refuse(
        self, actor: Principal, action: str, job_id: str | None, error: DomainError
    ) -> NoReturn:
        async with self.db.transaction() as session:
            await audit.record(
                session, actor=actor, action=action, job_id=job_id,
                outcome=audit.REFUSED, detail=error.message,
            )
        raise error

    async def _by_idempotency_key(self, owner: str, key: str) -> Job | None:
        async with self.db.reader() as session:
            return await JobRepository(session).get_by_idempotency_key(owner=owner, key=key)

    async def _fail_submission(self, job: Job, reason: str) -> None:
        failed = replace(job, status=JobStatus.FAILED, reason=reason, finished_at=utcnow())
        async with self.db.transaction() as session:
            await JobRepository(session).save_state(failed)
            await EventRepository(session).add_new(
                [JobEvent(job_id=job.job_id, type=EventType.WARNING, reason="FailedCreate", message=reason)]
            )
            await self.broker.publish_job(failed, within=session)
