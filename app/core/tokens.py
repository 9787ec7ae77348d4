"""API tokens: created once, stored hashed, checked on every request."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from app.core import audit
from app.domain.errors import NotFound, Unauthenticated, ValidationFailed
from app.domain.jobs import utcnow
from app.domain.principal import Principal
from app.domain.tokens import TokenInfo
from app.store.db import Database
from app.store.tokens import TokenRepository

TOKEN_PREFIX = "jg_"
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,254}$")


def hash_token(secret: str) -> str:
    # Tokens are 256-bit random, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        user: str,
        is_admin: bool = False,
        groups: tuple[str, ...] = (),
        expires_at: datetime | None = None,
        created_by: str = "cli",
    ) -> tuple[TokenInfo, str]:
        """Returns the token's record and its secret, which is not kept anywhere."""
        if not _USER.match(user):
            raise ValidationFailed(
                "user must be 1-255 letters, digits, '_', '.', '@' or '-'", field="user"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = TokenInfo(
            id="t-" + secrets.token_hex(6),
            user=user,
            is_admin=is_admin,
            groups=tuple(groups),
            created_at=utcnow(),
            expires_at=expires_at,
        )
        async with self.db.transaction() as session:
            await TokenRepository(session).add(token, token_hash=hash_token(secret))
            await audit.record(
                session, actor=created_by, action="token.create", detail=f"{token.id} for {user}"
            )
        return token, secret

    async def verify(self, secret: str) -> Principal:
        """The token's principal; `Unauthenticated` saying why when it does not work."""
        async with self.db.reader() as session:
            token = await TokenRepository(session).by_hash(hash_token(secret))
        if token is None:
            raise Unauthenticated("unknown API token: check it was copied whole, or create one")
        if token.revoked_at is not None:
            raise Unauthenticated(f"API token {token.id} was revoked")
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthenticated(f"API token {token.id} expired at {token.expires_at.isoformat()}")
        return Principal(user=token.user, is_admin=token.is_admin, groups=token.groups)

    async def list(self) -> list[TokenInfo]:
        async with self.db.reader() as session:
            return await TokenRepository(session).list()

    async def revoke(self, token_id: str, *, revoked_by: str = "cli") -> None:
        async with self.db.transaction() as session:
            if not await TokenRepository(session).revoke(token_id, at=utcnow()):
                raise NotFound(f"no token {token_id!r}")
            await audit.record(session, actor=revoked_by, action="token.revoke", detail=token_id)

    async def ensure_first_admin(self) -> str | None:
        """On a database with no token at all, create an admin token; return its secret."""
        async with self.db.reader() as session:
            if await TokenRepository(session).count():
                return None
        _, secret = await self.create(user="admin", is_admin=True, created_by="first-start")
        return secret
