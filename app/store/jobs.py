"""All SQL about jobs and their pods."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.jobs import Job, JobSpec, JobStatus, PendingReason, Pod, PodPhase, utcnow
from app.domain.listing import Audience, JobFilter, JobPage, PageRequest
from app.store.tables import JobEventRow, JobRow, JobShareRow, PodRow


def _job(row: Row[Any]) -> Job:
    """From a row of the jobs table with its `_SHARES` (as `shared_groups`)."""
    return Job(
        job_id=row.id,
        owner=row.owner,
        spec=JobSpec.from_config(row.config),
        status=JobStatus(row.status),
        reason=row.reason,
        exit_code=row.exit_code,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        idempotency_key=row.idempotency_key,
        shared_with=_groups(row.shared_groups),
        held=row.held,
        rerun_of=row.rerun_of,
        pending_reason=(
            PendingReason(row.pending_code, row.pending_message or "", row.pending_since)
            if row.pending_code else None
        ),
    )


def _pending_columns(job: Job) -> dict[str, Any]:
    reason = job.pending_reason
    return {
        "pending_code": reason.code if reason else None,
        "pending_message": reason.message if reason else None,
        "pending_since": reason.since if reason else None,
    }


def _pod(row: PodRow | Row[Any]) -> Pod:
    """From a PodRow or a Core row of the pods table (same attribute names)."""
    return Pod(
        job_id=row.job_id,
        name=row.name,
        replica_index=row.replica_index,
        phase=PodPhase(row.phase),
        node_name=row.node_name,
        exit_code=row.exit_code,
        restart_count=row.restart_count,
        reason=row.reason,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _audience(visible_to: Audience | None) -> tuple[str, dict[str, Any]]:
    """The shape of an audience ("anyone", "user", "groups") and its bound values."""
    if visible_to is None:
        return "anyone", {}
    if not visible_to.groups:
        return "user", {"user": visible_to.user}
    return "groups", {"user": visible_to.user, "groups": list(visible_to.groups)}


def _readable_conditions(shape: str, values: dict[str, Any] | None = None) -> list:
    """The conditions under which a job row may be read by an audience of this shape:
    its owner, or a member of a group it is shared with. Bound parameters `user` and
    `groups`, with `values` or to be given at execution."""

    def bound(name: str, **options: Any) -> Any:
        return bindparam(name, values[name], **options) if values else bindparam(name, **options)

    if shape == "anyone":
        return []
    if shape == "user":
        return [col(JobRow.owner) == bound("user")]
    shared = select(col(JobShareRow.job_id)).where(
        col(JobShareRow.group_name).in_(bound("groups", expanding=True))
    )
    return [or_(col(JobRow.owner) == bound("user"), col(JobRow.id).in_(shared))]


def readable_by(visible_to: Audience | None) -> list:
    """The conditions under which a job row may be read by `visible_to` (None: by anyone,
    e.g. an admin), with its values. Every read of a job's data on a caller's behalf puts
    them in its statement (as Polar's get_readable_statement does), so a new caller
    cannot forget the check."""
    return _readable_conditions(*_audience(visible_to))


# SQLModel sets __table__ on each table class; its annotations do not declare it.
_JOBS = JobRow.__table__  # type: ignore[attr-defined]
_PODS = PodRow.__table__  # type: ignore[attr-defined]
_DELETE_PODS = _PODS.delete().where(_PODS.c.job_id == bindparam("job_id"))
# The mutable fields of a job (its state); each value is a parameter of the same name.
_SAVE_STATE = _JOBS.update().where(_JOBS.c.id == bindparam("job_id")).values({
    name: bindparam(name) for name in (
        "status", "reason", "exit_code", "started_at", "finished_at", "updated_at",
        "pending_code", "pending_message", "pending_since",
    )
})
# The groups a job is shared with, read in the job's own statement: "position:group"
# lines (group names hold no control characters), put in order by `_groups`.
_SHARES = (
    select(
        func.aggregate_strings(
            sql_cast(col(JobShareRow.position), String) + ":" + col(JobShareRow.group_name), "\n"
        )
    )
    .where(col(JobShareRow.job_id) == col(JobRow.id))
    .correlate(_JOBS)
    .scalar_subquery()
    .label("shared_groups")
)


def _groups(aggregated: str | None) -> tuple[str, ...]:
    if not aggregated:
        return ()
    entries = [line.split(":", 1) for line in aggregated.split("\n")]
    return tuple(group for _, group in sorted(entries, key=lambda entry: int(entry[0])))
# The pod columns of a job-with-pods row, named apart from the job's own.
_POD_COLUMNS = [column.label(f"pod_{column.name}") for column in _PODS.c]


def _pod_of_row(row) -> Pod:
    return Pod(
        job_id=row.pod_job_id,
        name=row.pod_name,
        replica_index=row.pod_replica_index,
        phase=PodPhase(row.pod_phase),
        node_name=row.pod_node_name,
        exit_code=row.pod_exit_code,
        restart_count=row.pod_restart_count,
        reason=row.pod_reason,
        started_at=row.pod_started_at,
        finished_at=row.pod_finished_at,
    )


def _readable_with_pods(shape: str) -> Any:
    """A job and its pods, for one shape of audience, with bound parameters: built once,
    so SQLAlchemy's cache key of the statement (a walk of the whole tree, ~0.1 ms,
    profiled on the uncached GET) is computed once too."""
    return (
        select(_JOBS, _SHARES, *_POD_COLUMNS)
        .select_from(_JOBS.outerjoin(_PODS, col(PodRow.job_id) == col(JobRow.id)))
        .where(col(JobRow.id) == bindparam("job_id"), *_readable_conditions(shape))
        .order_by(col(PodRow.replica_index), col(PodRow.name))
    )


_READABLE_WITH_PODS = {kind: _readable_with_pods(kind) for kind in ("anyone", "user", "groups")}


def _like_pattern(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: Job) -> None:
        now = utcnow()
        self.session.add(
            JobRow(
                id=job.job_id,
                name=job.name,
                owner=job.owner,
                status=job.status.value,
                pool_id=job.resource_pool_id,
                queue=job.queue,
                priority=job.spec.priority,
                image=job.spec.image,
                config=job.spec.to_config(),
                reason=job.reason,
                exit_code=job.exit_code,
                idempotency_key=job.idempotency_key,
                created_at=job.created_at,
                updated_at=now,
                held=job.held,
                rerun_of=job.rerun_of,
                **_pending_columns(job),
            )
        )
        await self.session.flush()
        await self._write_shares(job.job_id, job.shared_with)

    async def set_shares(self, job_id: str, groups: tuple[str, ...]) -> None:
        row = await self.session.get(JobRow, job_id)
        if row is None:
            return
        row.updated_at = utcnow()
        await self.session.execute(delete(JobShareRow).where(col(JobShareRow.job_id) == job_id))
        await self._write_shares(job_id, groups)

    async def _write_shares(self, job_id: str, groups: tuple[str, ...]) -> None:
        for position, group in enumerate(dict.fromkeys(groups)):
            self.session.add(JobShareRow(job_id=job_id, group_name=group, position=position))
        await self.session.flush()

    async def get(self, job_id: str, *, for_update: bool = False) -> Job | None:
        statement = select(_JOBS, _SHARES).where(col(JobRow.id) == job_id)
        if for_update:
            statement = statement.with_for_update(of=_JOBS)
        row = (await self.session.execute(statement)).first()
        return _job(row) if row else None

    async def get_readable(
        self, job_id: str, *, visible_to: Audience | None, with_pods: bool = False
    ) -> tuple[Job, list[Pod]] | None:
        """The job if `visible_to` may read it, and (with `with_pods`) its pods, in one
        query (SQLAlchemy Core rows: no ORM objects are built for a read)."""
        if not with_pods:
            statement = select(_JOBS, _SHARES).where(
                col(JobRow.id) == job_id, *readable_by(visible_to)
            )
            row = (await self.session.execute(statement)).first()
            return (_job(row), []) if row else None
        shape, values = _audience(visible_to)
        # On the session's connection: Core rows, without the ORM's execution steps.
        connection = await self.session.connection()
        rows = (await connection.execute(_READABLE_WITH_PODS[shape], {"job_id": job_id, **values})).all()
        if not rows:
            return None
        return _job(rows[0]), [_pod_of_row(r) for r in rows if r.pod_name is not None]

    async def get_by_idempotency_key(self, *, owner: str, key: str) -> Job | None:
        statement = select(_JOBS, _SHARES).where(
            col(JobRow.owner) == owner, col(JobRow.idempotency_key) == key
        )
        row = (await self.session.execute(statement)).first()
        return _job(row) if row else None

    async def save_state(self, job: Job) -> None:
        """Write the mutable fields (status, reason, times) of a job: one UPDATE of a
        fixed shape, built once, on the Core connection (no row loaded first)."""
        connection = await self.session.connection()
        await connection.execute(_SAVE_STATE, {
            "job_id": job.job_id, "status": job.status.value, "reason": job.reason,
            "exit_code": job.exit_code, "started_at": job.started_at,
            "finished_at": job.finished_at, "updated_at": utcnow(), **_pending_columns(job),
        })

    async def mark_stopping(self, job_id: str) -> bool:
        """STOPPING, unless the job ended meanwhile (a compare-and-set, so a concurrent
        final status from the runtime is never overwritten)."""
        final = [s.value for s in JobStatus if s.is_final]
        statement = (
            update(JobRow)
            .where(col(JobRow.id) == job_id, col(JobRow.status).not_in(final))
            .values(status=JobStatus.STOPPING.value, updated_at=utcnow())
        )
        # DML answers a CursorResult (with rowcount); AsyncSession.execute is annotated
        # with the general Result.
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount == 1

    async def delete(self, job_id: str) -> None:
        # Pods and events go with it (ON DELETE CASCADE); delete them explicitly too so
        # the outcome does not depend on the SQLite foreign-key pragma.
        await self.session.execute(delete(PodRow).where(col(PodRow.job_id) == job_id))
        await self.session.execute(delete(JobShareRow).where(col(JobShareRow.job_id) == job_id))
        await self.session.execute(delete(JobEventRow).where(col(JobEventRow.job_id) == job_id))
        await self.session.execute(delete(JobRow).where(col(JobRow.id) == job_id))

    def _where(self, job_filter: JobFilter, visible_to: Audience | None) -> list:
        conditions = readable_by(visible_to)
        if job_filter.owner:
            conditions.append(col(JobRow.owner) == job_filter.owner)
        if job_filter.statuses:
            conditions.append(col(JobRow.status).in_([s.value for s in job_filter.statuses]))
        if job_filter.resource_pool_id:
            conditions.append(col(JobRow.pool_id) == job_filter.resource_pool_id)
        if job_filter.queue:
            conditions.append(col(JobRow.queue) == job_filter.queue)
        if job_filter.keyword:
            pattern = _like_pattern(job_filter.keyword.strip())
            conditions.append(
                or_(col(JobRow.name).ilike(pattern, escape="\\"), col(JobRow.id).ilike(pattern, escape="\\"))
            )
        return conditions

    async def list(
        self, *, job_filter: JobFilter, page: PageRequest, visible_to: Audience | None
    ) -> JobPage:
        """Newest first. `visible_to` restricts to what one audience may read (None: all)."""
        conditions = self._where(job_filter, visible_to)
        if page.after is not None:
            conditions.append(
                tuple_(col(JobRow.created_at), col(JobRow.id)) < tuple_(page.after.created_at, page.after.job_id)
                if self._supports_row_values()
                else or_(
                    col(JobRow.created_at) < page.after.created_at,
                    and_(col(JobRow.created_at) == page.after.created_at, col(JobRow.id) < page.after.job_id),
                )
            )
        statement = (
            select(_JOBS, _SHARES)
            .where(*conditions)
            .order_by(col(JobRow.created_at).desc(), col(JobRow.id).desc())
            .offset(page.offset)
            .limit(page.first + 1)
        )
        rows = (await self.session.execute(statement)).all()
        return JobPage(
            jobs=[_job(r) for r in rows[: page.first]],
            has_next_page=len(rows) > page.first,
            has_previous_page=page.after is not None or page.offset > 0,
        )

    def _supports_row_values(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def count(self, *, job_filter: JobFilter, visible_to: Audience | None) -> int:
        statement = select(func.count()).select_from(JobRow).where(
            *self._where(job_filter, visible_to)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def count_by_status(self) -> dict[str, int]:
        statement = select(col(JobRow.status), func.count()).group_by(col(JobRow.status))
        return {status: count for status, count in (await self.session.execute(statement)).all()}

    async def changed_since(self, since: datetime, *, limit: int = 1000) -> builtins.list[Job]:
        """Jobs written at or after `since`, oldest change first (at most `limit`)."""
        statement = (
            select(_JOBS, _SHARES).where(col(JobRow.updated_at) >= since)
            .order_by(col(JobRow.updated_at), col(JobRow.id)).limit(limit)
        )
        return [_job(r) for r in (await self.session.execute(statement)).all()]

    async def list_active(self, *, pool_id: str) -> builtins.list[Job]:
        final = [s.value for s in JobStatus if s.is_final]
        statement = (
            select(_JOBS, _SHARES)
            .where(col(JobRow.pool_id) == pool_id, col(JobRow.status).not_in(final))
            .order_by(col(JobRow.created_at), col(JobRow.id))
        )
        return [_job(r) for r in (await self.session.execute(statement)).all()]


class PodRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def replace(self, job_id: str, pods: Iterable[Pod]) -> None:
        """The job's pods are now these: two statements of a fixed shape on the Core
        connection (no ORM objects, compiled once)."""
        connection = await self.session.connection()
        await connection.execute(_DELETE_PODS, {"job_id": job_id})
        rows = [
            {
                "job_id": job_id, "name": pod.name, "replica_index": pod.replica_index,
                "phase": pod.phase.value, "node_name": pod.node_name, "exit_code": pod.exit_code,
                "restart_count": pod.restart_count, "reason": pod.reason,
                "started_at": pod.started_at, "finished_at": pod.finished_at,
            }
            for pod in pods
        ]
        if rows:
            await connection.execute(_PODS.insert(), rows)

    async def for_jobs(
        self, job_ids: Sequence[str], *, visible_to: Audience | None
    ) -> dict[str, list[Pod]]:
        """Pods of those of the jobs `visible_to` may read, in one query (the DataLoader's
        batch); the others have none."""
        result: dict[str, list[Pod]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return result
        statement = select(_PODS).where(col(PodRow.job_id).in_(list(job_ids)))
        if visible_to is not None:
            statement = statement.join(_JOBS, col(JobRow.id) == col(PodRow.job_id)).where(
                *readable_by(visible_to)
            )
        statement = statement.order_by(col(PodRow.job_id), col(PodRow.replica_index), col(PodRow.name))
        for row in (await self.session.execute(statement)).all():
            result[row.job_id].append(_pod(row))
        return result

    async def readable_pod(
        self, job_id: str, pod_name: str, *, visible_to: Audience | None
    ) -> tuple[str, Pod] | None:
        """The pool of the job and the pod, if `visible_to` may read the job and the pod is
        one of its pods."""
        statement = (
            select(col(JobRow.pool_id), _PODS)
            .select_from(_PODS.join(_JOBS, col(JobRow.id) == col(PodRow.job_id)))
            .where(col(PodRow.job_id) == job_id, col(PodRow.name) == pod_name, *readable_by(visible_to))
        )
        row = (await self.session.execute(statement)).first()
        return (row.pool_id, _pod(row)) if row else None
