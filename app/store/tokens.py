"""All SQL about API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.tokens import TokenInfo
from app.store.notifications import notify
from app.store.tables import ApiTokenRow


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=row.user,
        is_admin=row.is_admin,
        groups=tuple(row.groups),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: TokenInfo, *, token_hash: str) -> None:
        self.session.add(
            ApiTokenRow(
                id=token.id,
                user=token.user,
                is_admin=token.is_admin,
                groups=list(token.groups),
                token_hash=token_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
            )
        )
        await self.session.flush()

    async def by_hash(self, token_hash: str) -> TokenInfo | None:
        statement = select(ApiTokenRow).where(col(ApiTokenRow.token_hash) == token_hash)
        row = (await self.session.execute(statement)).scalar_one_or_none()
        return _info(row) if row else None

    async def list(self) -> list[TokenInfo]:
        statement = select(ApiTokenRow).order_by(col(ApiTokenRow.created_at))
        return [_info(r) for r in (await self.session.execute(statement)).scalars().all()]

    async def count(self) -> int:
        statement = select(func.count()).select_from(ApiTokenRow)
        return (await self.session.execute(statement)).scalar_one()

    async def delete_expired(self, *, id_prefix: str, before: datetime) -> int:
        """Delete the tokens whose id starts with `id_prefix` that expired before `before`;
        how many were deleted."""
        statement = delete(ApiTokenRow).where(
            col(ApiTokenRow.id).startswith(id_prefix, autoescape=True),
            col(ApiTokenRow.expires_at) < before,
        )
        # DML answers a CursorResult (with rowcount); AsyncSession.execute is annotated
        # with the general Result.
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount or 0

    async def revoke(self, token_id: str, *, at: datetime) -> bool:
        row = await self.session.get(ApiTokenRow, token_id)
        if row is None:
            return False
        row.revoked_at = row.revoked_at or at
        await self.session.flush()
        return True

    async def announce(self, channel: str, payload: str) -> None:
        """PostgreSQL: NOTIFY `channel` when this transaction commits (and never if it rolls
        back), so every replica hears of the change. Nothing elsewhere."""
        if self.session.get_bind().dialect.name == "postgresql":
            await notify(self.session, channel, payload)
