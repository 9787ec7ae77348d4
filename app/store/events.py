"""All SQL about job events."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.jobs import EventType, JobEvent
from app.domain.listing import Audience
from app.store.jobs import readable_by
from app.store.tables import JobEventRow, JobRow

MAX_EVENTS_PER_READ = 5000
# SQLModel sets __table__ on each table class; its annotations do not declare it.
_EVENTS = JobEventRow.__table__  # type: ignore[attr-defined]
# An event seen before (same job and key) is left alone; the new ones are answered.
_INSERT_NEW = {
    name: dialect.insert(_EVENTS)
    .on_conflict_do_nothing(index_elements=["job_id", "key"])
    .returning(_EVENTS.c.job_id, _EVENTS.c.key)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _event(row: JobEventRow | Row[Any]) -> JobEvent:
    """From a JobEventRow or a Core row of the events table (same attribute names)."""
    return JobEvent(
        job_id=row.job_id,
        key=row.key,
        type=EventType(row.type),
        reason=row.reason,
        message=row.message,
        timestamp=row.timestamp,
    )


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_new(self, events: Iterable[JobEvent]) -> list[JobEvent]:
        """Store events not seen before (by job and key); returns the new ones, in the
        order given."""
        pending = {(e.job_id, e.key): e for e in events}  # a repeated key counts once
        if not pending:
            return []
        connection = await self.session.connection()
        # One statement of a fixed shape, its rows as parameters: compiled once and kept
        # in SQLAlchemy's cache (a VALUES list built per call was compiled per call); the
        # rows go out in pages as one multi-row INSERT each ("insertmanyvalues").
        statement = _INSERT_NEW[connection.dialect.name]
        rows = [
            {
                "job_id": e.job_id, "key": e.key, "type": e.type.value,
                "reason": e.reason, "message": e.message, "timestamp": e.timestamp,
            }
            for e in pending.values()
        ]
        added = {(row.job_id, row.key) for row in await connection.execute(statement, rows)}
        return [event for key, event in pending.items() if key in added]

    async def get(self, job_id: str, key: str) -> JobEvent | None:
        statement = select(JobEventRow).where(col(JobEventRow.job_id) == job_id, col(JobEventRow.key) == key)
        row = (await self.session.execute(statement)).scalar_one_or_none()
        return _event(row) if row else None

    async def list(
        self,
        job_id: str,
        *,
        visible_to: Audience | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = MAX_EVENTS_PER_READ,
    ) -> list[JobEvent]:
        """Oldest first; none unless `visible_to` may read the job."""
        return (
            await self.for_jobs([job_id], visible_to=visible_to, since=since, until=until, limit=limit)
        )[job_id]

    async def for_jobs(
        self,
        job_ids: builtins.list[str],
        *,
        visible_to: Audience | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = MAX_EVENTS_PER_READ,
    ) -> dict[str, builtins.list[JobEvent]]:
        """Events of those of the jobs `visible_to` may read, within the window, oldest
        first, at most `limit` per job, in one query."""
        result: dict[str, list[JobEvent]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return result
        statement = select(_EVENTS).where(col(JobEventRow.job_id).in_(job_ids))
        if visible_to is not None:
            jobs = JobRow.__table__  # type: ignore[attr-defined]  # (see _EVENTS)
            statement = statement.join(jobs, col(JobRow.id) == col(JobEventRow.job_id)).where(
                *readable_by(visible_to)
            )
        if since is not None:
            statement = statement.where(col(JobEventRow.timestamp) >= since)
        if until is not None:
            statement = statement.where(col(JobEventRow.timestamp) <= until)
        statement = statement.order_by(col(JobEventRow.job_id), col(JobEventRow.timestamp), col(JobEventRow.id))
        for row in (await self.session.execute(statement)).all():
            events = result[row.job_id]
            if len(events) < limit:
                events.append(_event(row))
        return result
