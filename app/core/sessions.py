"""Logging in and out with a user name and a credential (the legacy console's form sends
`ak` = user name, `sk` = an API token or OIDC token of that user).

This happens before there is a principal, so it is a use case of its own rather than an
operation run as someone. What the login answers:

- for an API token, a *session token*: a new API token of the same user and rights,
  stored hashed like every token, with an id `s-...`, expiring after
  `session_ttl_seconds` (or with the API token it came from, if that expires first).
  Logging out revokes it. The console keeps its token in the browser's local storage;
  handing back the long-lived API token would leave it there, and a logout could not
  end it without revoking the user's own token.
- for an OIDC token, that token itself: a jobgraph token must not outlive what the
  identity provider granted, and its expiry and revocation are the provider's. Logging
  out has nothing of ours to revoke then.

Every attempt takes one from its client address's rate-limit bucket before anything is
verified, so guesses are bounded; refused attempts are audited (`login`, `refused`),
except those past the limit, which are refused without a write (like forged terminal
credentials, app/core/terminals.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from app.core import audit
from app.core.identity import IdentityService
from app.core.oidc import looks_like_jwt
from app.core.ratelimit import RateLimiter
from app.core.tokens import TokenService
from app.domain.errors import Unauthenticated, ValidationFailed
from app.domain.principal import Principal
from app.store.db import Database

log = structlog.get_logger(__name__)

MAX_USER_LENGTH = 255
MAX_SECRET_LENGTH = 32 * 1024  # the largest JWT the OIDC verifier reads
# Who the audit trail names for a refused login whose user name is not even plausible.
UNKNOWN_ACTOR = "anonymous"


@dataclass(frozen=True, slots=True)
class LoginSession:
    principal: Principal
    token: str  # the credential to send from now on
    expires_at: datetime | None  # None: as long as the presented OIDC token is valid


class SessionService:
    def __init__(
        self, *, db: Database, identity: IdentityService, tokens: TokenService,
        limiter: RateLimiter, ttl_seconds: float,
    ) -> None:
        self._db = db
        self._identity = identity
        self._tokens = tokens
        self._limiter = limiter
        self._ttl_seconds = ttl_seconds

    async def login(self, *, user: str, secret: str, client_addr: str | None) -> LoginSession:
        """Raises `RateLimited`, `ValidationFailed` (no or oversized user/credential) or
        `Unauthenticated` (the pair does not match; audited)."""
        self._limiter.check(f"login@{client_addr}")
        if not user or len(user) > MAX_USER_LENGTH:
            raise ValidationFailed(f"ak (the user name) must be 1-{MAX_USER_LENGTH} characters", field="ak")
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            raise ValidationFailed(
                f"sk (an API token or OIDC token) must be 1-{MAX_SECRET_LENGTH} characters", field="sk"
            )
        try:
            principal = await self._identity.authenticate(secret, client_addr=client_addr)
        except Unauthenticated as refusal:
            reason = refusal.message
        else:
            if principal.user == user:
                return await self._open(principal, secret)
            reason = "it is not a credential of this user"
        await self._refused(user, client_addr, reason)
        raise Unauthenticated(
            f"login refused: sk must be a valid API token (or OIDC token) of user {user!r}; {reason}"
        )

    async def logout(self, secret: str, *, actor: Principal) -> bool:
        """End the session `secret` opened; True when a session token was revoked."""
        ended = await self._tokens.end_session(secret, actor=actor)
        log.info("logout", user=actor.user, revoked=ended.id if ended else None)
        return ended is not None

    async def _open(self, principal: Principal, secret: str) -> LoginSession:
        if looks_like_jwt(secret):
            async with self._db.transaction() as session:
                await audit.record(session, actor=principal, action="login", detail="OIDC token")
            return LoginSession(principal=principal, token=secret, expires_at=None)
        token, session_secret = await self._tokens.create_session(
            principal=principal, source=secret, ttl_seconds=self._ttl_seconds
        )
        return LoginSession(principal=principal, token=session_secret, expires_at=token.expires_at)

    async def _refused(self, user: str, client_addr: str | None, reason: str) -> None:
        actor = user if _plausible_user(user) else UNKNOWN_ACTOR
        log.info("login", user=actor, outcome=audit.REFUSED, detail=reason)
        async with self._db.transaction() as session:
            await audit.record(
                session, actor=Principal(user=actor, client_addr=client_addr), action="login",
                outcome=audit.REFUSED, detail=reason,
            )


def _plausible_user(user: str) -> bool:
    return user.isprintable() and len(user) <= MAX_USER_LENGTH
