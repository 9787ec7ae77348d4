"""Writing the audit trail: who did what to which job, when, from where, and the outcome."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.audit import AuditEntry, AuditFilter
from app.domain.errors import PermissionDenied, ValidationFailed
from app.domain.jobs import utcnow
from app.domain.listing import MAX_PAGE_SIZE
from app.domain.principal import Principal
from app.store.audit import AuditRepository
from app.store.db import Database

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
        at=utcnow(), actor=user, action=action, job_id=job_id, outcome=outcome,
        detail=detail, client_addr=addr,
    )


class AuditService:
    """Reading the trail: for admins only."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def entries(
        self, *, actor: Principal, audit_filter: AuditFilter, first: int, after: str | None
    ) -> tuple[list[AuditEntry], bool]:
        if not actor.is_admin:
            raise PermissionDenied("only administrators may read the audit trail")
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise ValidationFailed(f"page size must be between 1 and {MAX_PAGE_SIZE}", field="first")
        before_id = None
        if after is not None:
            if not after.isdigit():
                raise ValidationFailed("cursor is not valid: pass an endCursor of a previous page", field="after")
            before_id = int(after)
        async with self.db.reader() as session:
            rows = await AuditRepository(session).list(
                audit_filter=audit_filter, before_id=before_id, limit=first + 1
            )
        return rows[:first], len(rows) > first
