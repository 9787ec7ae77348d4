"""API tokens: created once, stored hashed, checked on every request."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from app.core import audit
from app.domain.errors import NotFound, Unauthenticated, ValidationFailed
from app.domain.jobs import utcnow
from app.domain.principal import Principal
from app.domain.tokens import TokenInfo
from app.store.db import Database
from app.store.tokens import TokenRepository

TOKEN_PREFIX = "jg_"
# Token ids say what made the token: `t-` the CLI (or first start), `s-` a login
# (POST /api/login/account), which its logout may revoke.
API_TOKEN_ID_PREFIX = "t-"
SESSION_ID_PREFIX = "s-"
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,254}$")


def hash_token(secret: str) -> str:
    # Tokens are 256-bit random, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_token(
    id_prefix: str, *, user: str, is_admin: bool, groups: tuple[str, ...],
    expires_at: datetime | None,
) -> tuple[TokenInfo, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = TokenInfo(
        id=id_prefix + secrets.token_hex(6),
        user=user,
        is_admin=is_admin,
        groups=tuple(groups),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    return token, secret


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
        token, secret = _new_token(
            API_TOKEN_ID_PREFIX, user=user, is_admin=is_admin, groups=groups, expires_at=expires_at
        )
        async with self.db.transaction() as session:
            await TokenRepository(session).add(token, token_hash=hash_token(secret))
            await audit.record(
                session, actor=created_by, action="token.create", detail=f"{token.id} for {user}"
            )
        return token, secret

    async def create_session(
        self, *, principal: Principal, source: str, ttl_seconds: float
    ) -> tuple[TokenInfo, str]:
        """A login's token: the principal's rights, stored hashed like any API token,
        expiring after `ttl_seconds` or with the API token it was made from (`source`),
        whichever comes first. Audited as the login."""
        expires_at = utcnow() + timedelta(seconds=ttl_seconds)
        async with self.db.transaction() as session:
            repository = TokenRepository(session)
            origin = await repository.by_hash(hash_token(source))
            if origin is not None and origin.expires_at is not None:
                expires_at = min(expires_at, origin.expires_at)
            token, secret = _new_token(
                SESSION_ID_PREFIX, user=principal.user, is_admin=principal.is_admin,
                groups=principal.groups, expires_at=expires_at,
            )
            await repository.add(token, token_hash=hash_token(secret))
            await audit.record(
                session, actor=principal, action="login",
                detail=f"session token {token.id}, expires {expires_at.isoformat()}",
            )
        return token, secret

    async def end_session(self, secret: str, *, actor: Principal) -> TokenInfo | None:
        """Revoke `secret` if it is a login's token of `actor`; any other credential (an
        API token from the CLI, an OIDC token) is left alone. The revoked token, or None."""
        async with self.db.reader() as session:
            token = await TokenRepository(session).by_hash(hash_token(secret))
        if token is None or not token.id.startswith(SESSION_ID_PREFIX) or token.user != actor.user:
            return None
        await self.revoke(token.id, revoked_by=actor, action="logout")
        return token

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

    async def revoke(
        self, token_id: str, *, revoked_by: Principal | str = "cli", action: str = "token.revoke"
    ) -> None:
        async with self.db.transaction() as session:
            if not await TokenRepository(session).revoke(token_id, at=utcnow()):
                raise NotFound(f"no token {token_id!r}")
            await audit.record(session, actor=revoked_by, action=action, detail=token_id)

    async def ensure_first_admin(self) -> str | None:
        """On a database with no token at all, create an admin token; return its secret."""
        async with self.db.reader() as session:
            if await TokenRepository(session).count():
                return None
        _, secret = await self.create(user="admin", is_admin=True, created_by="first-start")
        return secret
