"""All SQL about API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.tables import ApiTokenRow


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: ApiTokenRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def by_hash(self, token_hash: str) -> ApiTokenRow | None:
        statement = select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get(self, token_id: str) -> ApiTokenRow | None:
        return await self.session.get(ApiTokenRow, token_id)

    async def list(self) -> list[ApiTokenRow]:
        statement = select(ApiTokenRow).order_by(ApiTokenRow.created_at)
        return list((await self.session.execute(statement)).scalars().all())

    async def count(self) -> int:
        statement = select(func.count()).select_from(ApiTokenRow)
        return (await self.session.execute(statement)).scalar_one()

    async def revoke(self, token_id: str, *, at: datetime) -> bool:
        row = await self.session.get(ApiTokenRow, token_id)
        if row is None:
            return False
        row.revoked_at = row.revoked_at or at
        await self.session.flush()
        return True
