"""SQL about waiting jobs: holding, re-ordering, and what the start order needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.jobs import WAITING_STATUSES, JobSpec, PendingReason, utcnow
from app.domain.queueing import HELD, QueueEntry
from app.store.tables import JobRow

_WAITING = [status.value for status in WAITING_STATUSES]

# A pool and one of its queues.
PoolQueue = tuple[str, str]


class WaitingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _update(self, job_id: str, values: dict[str, Any], *, only_waiting: bool) -> bool:
        conditions = [col(JobRow.id) == job_id]
        if only_waiting:
            # A compare-and-set: a job that started meanwhile (the sync wrote it) is not
            # touched, and the caller learns it.
            conditions.append(col(JobRow.status).in_(_WAITING))
        statement = update(JobRow).where(*conditions).values(**values, updated_at=utcnow())
        # DML answers a CursorResult (with rowcount); AsyncSession.execute is annotated
        # with the general Result.
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount == 1

    async def set_held(self, job_id: str, held: bool, *, reason: PendingReason | None) -> bool:
        """Hold or release the job if it still waits; `reason` becomes why it waits."""
        return await self._update(
            job_id,
            {
                "held": held,
                "pending_code": reason.code if reason else None,
                "pending_message": reason.message if reason else None,
                "pending_since": reason.since if reason else None,
            },
            only_waiting=True,
        )

    async def undo_hold(self, job_id: str) -> None:
        """Not held after all (the runtime refused): neither the flag nor the reason."""
        await self._update(job_id, {"held": False}, only_waiting=False)
        statement = (
            update(JobRow)
            .where(col(JobRow.id) == job_id, col(JobRow.pending_code) == HELD)
            .values(pending_code=None, pending_message=None, pending_since=None)
        )
        await self.session.execute(statement)

    async def set_placement(self, job_id: str, spec: JobSpec, *, only_waiting: bool = True) -> bool:
        """The job's priority and queue (columns and stored spec), if it still waits."""
        return await self._update(
            job_id,
            {"priority": spec.priority, "queue": spec.queue, "config": spec.to_config()},
            only_waiting=only_waiting,
        )

    async def entries(self, job_ids: Iterable[str]) -> dict[PoolQueue, list[QueueEntry]]:
        """The waiting, not held jobs that may be ahead of the given ones, by pool and
        queue, in one query: those of each asked-about job's pool and queue (as the
        database has them now) with at least the lowest priority asked about there.
        What the start order needs, nothing more: the order itself is the domain's."""
        waiting = [col(JobRow.status).in_(_WAITING), col(JobRow.held).is_(False)]
        asked = (
            select(
                col(JobRow.pool_id).label("pool_id"), col(JobRow.queue).label("queue"),
                func.min(col(JobRow.priority)).label("lowest"),
            )
            .where(col(JobRow.id).in_(list(job_ids)), *waiting)
            .group_by(col(JobRow.pool_id), col(JobRow.queue))
            .subquery()
        )
        statement = (
            select(
                col(JobRow.id), col(JobRow.pool_id), col(JobRow.queue),
                col(JobRow.priority), col(JobRow.created_at),
            )
            .join(asked, and_(
                col(JobRow.pool_id) == asked.c.pool_id, col(JobRow.queue) == asked.c.queue,
                col(JobRow.priority) >= asked.c.lowest,
            ))
            .where(*waiting)
        )
        found: dict[PoolQueue, list[QueueEntry]] = {}
        for row in (await self.session.execute(statement)).all():
            found.setdefault((row.pool_id, row.queue), []).append(
                QueueEntry(job_id=row.id, priority=row.priority, created_at=row.created_at)
            )
        return found
