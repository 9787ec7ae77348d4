"""All SQL about usage: what each pool's jobs hold now, and what jobs used over a window
(the rules are in app/domain/usage.py). Each answer is one aggregating statement.

Times are compared as seconds since the epoch, which each dialect computes its own way
(SQLite stores naive UTC text: julianday, which works to the millisecond; PostgreSQL:
extract(epoch), to the microsecond); so are the
two-argument minimum and maximum (SQLite's scalar min/max, PostgreSQL's least/greatest).
What a replica asks for lives in the job's JSON spec and is read with JSON paths, which
SQLAlchemy renders for each dialect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.domain.errors import ValidationFailed
from app.domain.jobs import FINAL_STATUSES, JobStatus
from app.domain.usage import MAX_ROWS, PoolUsage, UsageGroupBy, UsageRow, UsageWindow
from app.store.tables import JobRow, PodRow

_DAY = 86400.0
_FINAL = [s.value for s in FINAL_STATUSES]
_ACTIVE = [s.value for s in JobStatus if not s.is_final]
_WAITING = [JobStatus.PENDING.value, JobStatus.QUEUED.value]


def _epoch(dialect: str, column: Any) -> ColumnElement[float]:
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * _DAY
    return cast(func.extract("epoch", column), Float)


def _least(dialect: str, a: Any, b: Any) -> ColumnElement[float]:
    return func.min(a, b) if dialect == "sqlite" else func.least(a, b)


def _greatest(dialect: str, a: Any, b: Any) -> ColumnElement[float]:
    return func.max(a, b) if dialect == "sqlite" else func.greatest(a, b)


def _number(value: float) -> ColumnElement[float]:
    return cast(literal(value, Float), Float)


def _requested(path: tuple[str, ...]) -> ColumnElement[float]:
    """A number of the job's spec (per replica); 0 when it asks none."""
    return func.coalesce(col(JobRow.config)[path].as_float(), 0.0)


_REPLICAS = func.coalesce(col(JobRow.config)[("replicas",)].as_float(), 1.0)
_GPU = _requested(("resources", "gpu"))
_CPUS = _requested(("resources", "cpus"))
_MEMORY = _requested(("resources", "memory"))


class _Clock:
    """The dialect's time arithmetic around one `now`."""

    def __init__(self, dialect: str, now: datetime) -> None:
        self.dialect = dialect
        self.now = _number(now.timestamp())

    def epoch(self, column: Any) -> ColumnElement[float]:
        return _epoch(self.dialect, column)

    def overlap(self, start: Any, end: Any, lo: Any, hi: Any) -> ColumnElement[float]:
        """Seconds of [start, end] inside [lo, hi]; 0 when there is no start (said
        explicitly: PostgreSQL's greatest() skips NULLs where SQLite's max() gives NULL)."""
        inside = _least(self.dialect, end, hi) - _greatest(self.dialect, start, lo)
        return case((start.is_(None), 0.0), else_=_greatest(self.dialect, inside, 0.0))

    def job_end(self) -> ColumnElement[float]:
        """When the job ended; a final job without a recorded end, when it was last
        written; one that has not ended, now."""
        return func.coalesce(
            self.epoch(col(JobRow.finished_at)),
            case(
                (col(JobRow.status).in_(_FINAL), self.epoch(col(JobRow.updated_at))),
                else_=self.now,
            ),
        )

    def replica_seconds(self, lo: Any, hi: Any, *outer: Any) -> ColumnElement[float]:
        """The running seconds of the job's replicas inside [lo, hi] (a subquery over
        its pods, correlated with the job and the `outer` FROMs that lo and hi come
        from): no replica runs past its job's end."""
        job_end = self.job_end()
        pod_end = _least(
            self.dialect, func.coalesce(self.epoch(col(PodRow.finished_at)), job_end), job_end
        )
        return func.coalesce(
            select(func.sum(self.overlap(self.epoch(col(PodRow.started_at)), pod_end, lo, hi)))
            .where(col(PodRow.job_id) == col(JobRow.id))
            .correlate(JobRow, *outer)
            .scalar_subquery(),
            0.0,
        )


def _key(group_by: UsageGroupBy) -> Any:
    if group_by is UsageGroupBy.OWNER:
        return col(JobRow.owner)
    if group_by is UsageGroupBy.POOL:
        return col(JobRow.pool_id)
    # Queue names repeat across pools ("default"): the key names both.
    return col(JobRow.pool_id) + "/" + col(JobRow.queue)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def pools_now(self, pools: Sequence[tuple[str, int | None]]) -> dict[str, PoolUsage]:
        """What each pool's jobs hold and how many wait, from its jobs that have not
        ended (found through the status index): one statement for all the pools."""
        slots = dict(pools)
        started = col(JobRow.started_at).is_not(None)
        running = or_(
            col(JobRow.status) == JobStatus.RUNNING.value,
            and_(col(JobRow.status) == JobStatus.STOPPING.value, started),
        )
        waiting = col(JobRow.status).in_(_WAITING)
        held = col(JobRow.held).is_(True)

        def total(condition: Any, value: Any = 1) -> ColumnElement[Any]:
            return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

        statement = (
            select(
                col(JobRow.pool_id),
                total(running).label("running"),
                total(and_(waiting, ~held)).label("queued"),
                total(and_(waiting, held)).label("held"),
                total(running, _REPLICAS * _GPU).label("gpus"),
                total(running, _REPLICAS * _CPUS).label("cpus"),
                total(running, _REPLICAS * _MEMORY).label("memory"),
            )
            .where(col(JobRow.status).in_(_ACTIVE), col(JobRow.pool_id).in_(list(slots)))
            .group_by(col(JobRow.pool_id))
        )
        found = {
            row.pool_id: PoolUsage(
                pool_id=row.pool_id,
                running_jobs=int(row.running),
                queued_jobs=int(row.queued),
                held_jobs=int(row.held),
                gpus_in_use=round(float(row.gpus)),
                cpus_in_use=float(row.cpus),
                memory_in_use=float(row.memory),
                slots_total=slots[row.pool_id],
            )
            for row in (await self.session.execute(statement)).all()
        }
        return {
            pool_id: found.get(pool_id, PoolUsage(pool_id=pool_id, slots_total=total_slots))
            for pool_id, total_slots in slots.items()
        }

    async def rows(
        self,
        *,
        window: UsageWindow,
        group_by: UsageGroupBy,
        now: datetime,
        pool_id: str | None = None,
        owner: str | None = None,
    ) -> list[UsageRow]:
        """What the jobs used inside the window, one row per key, ordered by key (DAY:
        one row per UTC day that has any job). At most MAX_ROWS rows."""
        clock = _Clock(self._dialect, now)
        since, until = window.since.timestamp(), window.until.timestamp()
        if group_by is UsageGroupBy.DAY:
            # One bucket per UTC day of the window, made by a recursive CTE (both
            # dialects) and clipped to the window.
            first = since - since % _DAY
            days = select(_number(first).label("day")).cte("days", recursive=True)
            days = days.union_all(
                select((days.c.day + _DAY).label("day")).where(days.c.day + _DAY < until)
            )
            lo = _greatest(clock.dialect, days.c.day, _number(since))
            hi = _least(clock.dialect, days.c.day + _DAY, _number(until))
            key: Any = days.c.day
        else:
            days = None
            lo, hi = _number(since), _number(until)
            key = _key(group_by)
        created = clock.epoch(col(JobRow.created_at))
        started = clock.epoch(col(JobRow.started_at))
        finished = clock.epoch(col(JobRow.finished_at))
        job_end = clock.job_end()
        queue_end = func.coalesce(started, job_end)
        conditions: list[Any] = [
            # The window as plain column comparisons first (the index on created_at) ...
            col(JobRow.created_at) < window.until,
            or_(col(JobRow.finished_at).is_(None), col(JobRow.finished_at) >= window.since),
            # ... then each bucket: the job's life overlaps it.
            created < hi,
            job_end >= lo,
        ]
        if pool_id is not None:
            conditions.append(col(JobRow.pool_id) == pool_id)
        if owner is not None:
            conditions.append(col(JobRow.owner) == owner)

        def ended_as(status: JobStatus) -> ColumnElement[int]:
            inside = and_(col(JobRow.status) == status.value, finished >= lo, finished < hi)
            return case((inside, 1), else_=0)

        replica_seconds = clock.replica_seconds(lo, hi, *([days] if days is not None else []))
        per_job = select(
            key.label("key"),
            ended_as(JobStatus.SUCCEEDED).label("succeeded"),
            ended_as(JobStatus.FAILED).label("failed"),
            clock.overlap(started, job_end, lo, hi).label("wall"),
            (_GPU * replica_seconds).label("gpu"),
            (_CPUS * replica_seconds).label("cpu"),
            clock.overlap(created, queue_end, lo, hi).label("queue"),
        ).where(*conditions)
        if days is not None:
            per_job = per_job.select_from(JobRow).join(days, literal(True))
        jobs = per_job.subquery("per_job")
        statement = (
            select(
                jobs.c.key,
                func.count().label("jobs"),
                func.sum(jobs.c.succeeded).label("succeeded"),
                func.sum(jobs.c.failed).label("failed"),
                func.sum(jobs.c.wall).label("wall"),
                func.sum(jobs.c.gpu).label("gpu"),
                func.sum(jobs.c.cpu).label("cpu"),
                func.sum(jobs.c.queue).label("queue"),
            )
            .group_by(jobs.c.key)
            .order_by(jobs.c.key)
            .limit(MAX_ROWS + 1)
        )
        rows = (await self.session.execute(statement)).all()
        if len(rows) > MAX_ROWS:
            raise ValidationFailed(
                f"more than {MAX_ROWS} rows: narrow the filter (a shorter window, one pool "
                "or one owner)",
                field="filter",
            )
        return [
            UsageRow(
                key=_day(row.key) if group_by is UsageGroupBy.DAY else str(row.key),
                jobs=int(row.jobs),
                succeeded=int(row.succeeded or 0),
                failed=int(row.failed or 0),
                wall_seconds=float(row.wall or 0.0),
                gpu_seconds=float(row.gpu or 0.0),
                cpu_seconds=float(row.cpu or 0.0),
                queue_seconds=float(row.queue or 0.0),
            )
            for row in rows
        ]

    async def job_seconds(self, job_id: str, *, now: datetime) -> tuple[float, float]:
        """The GPU and CPU seconds a job used over its whole life (as `rows` counts them)."""
        clock = _Clock(self._dialect, now)
        replica_seconds = clock.replica_seconds(_number(0.0), clock.now)
        statement = select(_GPU * replica_seconds, _CPUS * replica_seconds).where(
            col(JobRow.id) == job_id
        )
        row = (await self.session.execute(statement)).first()
        return (float(row[0] or 0.0), float(row[1] or 0.0)) if row else (0.0, 0.0)


def _day(day_start: float) -> str:
    # Rounded: julianday arithmetic gives the day's start to within microseconds.
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=round(day_start / _DAY))).date().isoformat()
