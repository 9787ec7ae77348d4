"""All SQL about spent web-terminal credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.store.tables import SpentCredentialRow


class SpentCredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def spend(self, nonce: str, *, expires_at: datetime, now: datetime) -> bool:
        """Mark the nonce used; False when it already was (by any replica)."""
        await self.session.execute(
            delete(SpentCredentialRow).where(col(SpentCredentialRow.expires_at) <= now)
        )
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # DML answers a CursorResult (with rowcount); AsyncSession.execute is annotated
        # with the general Result.
        result = cast(CursorResult[Any], await self.session.execute(
            insert(SpentCredentialRow)
            .values(nonce=nonce, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["nonce"])
        ))
        return result.rowcount == 1

    async def is_spent(self, nonce: str) -> bool:
        nonce_column = col(SpentCredentialRow.nonce)
        statement = select(nonce_column).where(nonce_column == nonce)
        return (await self.session.execute(statement)).first() is not None
