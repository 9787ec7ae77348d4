"""All SQL about the audit trail."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.tables import AuditRow


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: AuditRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def list(self, *, job_id: str | None = None, limit: int = 100) -> list[AuditRow]:
        statement = select(AuditRow)
        if job_id is not None:
            statement = statement.where(AuditRow.job_id == job_id)
        statement = statement.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        return list((await self.session.execute(statement)).scalars().all())
