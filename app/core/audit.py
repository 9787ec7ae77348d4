"""Writing the audit trail: who did what to which job, when, from where, and the outcome."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.jobs import utcnow
from app.domain.principal import Principal
from app.store.audit import AuditRepository
from app.store.tables import AuditRow

ALLOWED = "allowed"
REFUSED = "refused"


async def record(
    session: AsyncSession,
    *,
    actor: Principal | str,
    action: str,
    job_id: str | None = None,
    outcome: str = ALLOWED,
    detail: str | None = None,
) -> None:
    """Add an entry within the caller's transaction, so it commits with the change."""
    user = actor.user if isinstance(actor, Principal) else actor
    addr = actor.client_addr if isinstance(actor, Principal) else None
    await AuditRepository(session).add(
        AuditRow(
            at=utcnow(),
            actor=user,
            action=action,
            job_id=job_id,
            outcome=outcome,
            detail=detail,
            client_addr=addr,
        )
    )
