"""All SQL about job events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.jobs import EventType, JobEvent
from app.store.tables import JobEventRow

MAX_EVENTS_PER_READ = 5000


def _event(row: JobEventRow) -> JobEvent:
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
        """Store events not seen before (by job and key); returns the new ones."""
        dialect = self.session.bind.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        added: list[JobEvent] = []
        for event in events:
            statement = (
                insert(JobEventRow)
                .values(
                    job_id=event.job_id,
                    key=event.key,
                    type=event.type.value,
                    reason=event.reason,
                    message=event.message,
                    timestamp=event.timestamp,
                )
                .on_conflict_do_nothing(index_elements=["job_id", "key"])
            )
            result = await self.session.execute(statement)
            if result.rowcount:
                added.append(event)
        return added

    async def get(self, job_id: str, key: str) -> JobEvent | None:
        statement = select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.key == key)
        row = (await self.session.execute(statement)).scalar_one_or_none()
        return _event(row) if row else None

    async def list(
        self,
        job_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = MAX_EVENTS_PER_READ,
    ) -> list[JobEvent]:
        """Oldest first."""
        statement = select(JobEventRow).where(JobEventRow.job_id == job_id)
        if since is not None:
            statement = statement.where(JobEventRow.timestamp >= since)
        if until is not None:
            statement = statement.where(JobEventRow.timestamp <= until)
        statement = statement.order_by(JobEventRow.timestamp, JobEventRow.id).limit(limit)
        return [_event(r) for r in (await self.session.execute(statement)).scalars().all()]

    async def for_jobs(self, job_ids: list[str]) -> dict[str, list[JobEvent]]:
        result: dict[str, list[JobEvent]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return result
        statement = (
            select(JobEventRow)
            .where(JobEventRow.job_id.in_(job_ids))
            .order_by(JobEventRow.job_id, JobEventRow.timestamp, JobEventRow.id)
        )
        for row in (await self.session.execute(statement)).scalars().all():
            result[row.job_id].append(_event(row))
        return result
