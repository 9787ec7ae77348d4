"""All SQL about spent web-terminal credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.tables import SpentCredentialRow


class SpentCredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def spend(self, nonce: str, *, expires_at: datetime, now: datetime) -> bool:
        """Mark the nonce used; False when it already was (by any replica)."""
        await self.session.execute(
            delete(SpentCredentialRow).where(SpentCredentialRow.expires_at <= now)
        )
        insert = postgresql.insert if self.session.bind.dialect.name == "postgresql" else sqlite.insert
        result = await self.session.execute(
            insert(SpentCredentialRow)
            .values(nonce=nonce, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["nonce"])
        )
        return result.rowcount == 1

    async def is_spent(self, nonce: str) -> bool:
        statement = select(SpentCredentialRow.nonce).where(SpentCredentialRow.nonce == nonce)
        return (await self.session.execute(statement)).first() is not None
