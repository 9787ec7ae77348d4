"""All SQL about the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.audit import AuditEntry, AuditFilter
from app.store.tables import AuditRow


def _entry(row: AuditRow) -> AuditEntry:
    assert row.id is not None  # read back from the table, so the database numbered it
    return AuditEntry(
        id=row.id, at=row.at, actor=row.actor, action=row.action, outcome=row.outcome,
        job_id=row.job_id, detail=row.detail, client_addr=row.client_addr,
    )


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        job_id: str | None = None,
        detail: str | None = None,
        client_addr: str | None = None,
    ) -> None:
        self.session.add(
            AuditRow(
                at=at, actor=actor, action=action, outcome=outcome, job_id=job_id,
                detail=detail, client_addr=client_addr,
            )
        )
        await self.session.flush()

    async def list(
        self, *, audit_filter: AuditFilter = AuditFilter(), before_id: int | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Newest first; `before_id` continues after the last entry of a previous page."""
        statement = select(AuditRow)
        for column, value in (
            (col(AuditRow.actor), audit_filter.actor),
            (col(AuditRow.action), audit_filter.action),
            (col(AuditRow.job_id), audit_filter.job_id),
            (col(AuditRow.outcome), audit_filter.outcome),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if before_id is not None:
            statement = statement.where(col(AuditRow.id) < before_id)
        statement = statement.order_by(col(AuditRow.id).desc()).limit(limit)
        return [_entry(r) for r in (await self.session.execute(statement)).scalars().all()]
