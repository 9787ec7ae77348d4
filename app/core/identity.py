"""Who is asking: API tokens (`jg_...`) and, when an issuer is configured, OIDC/JWT bearer
tokens; then the per-principal rate limit. The same answer for every entry point."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from app.core.oidc import looks_like_jwt
from app.core.ratelimit import RateLimiter
from app.core.tokens import TOKEN_PREFIX, TokenService
from app.domain.errors import Unauthenticated
from app.domain.principal import Principal

if TYPE_CHECKING:
    from app.core.oidc import OidcVerifier


class IdentityService:
    def __init__(
        self, *, tokens: TokenService, limiter: RateLimiter, oidc: OidcVerifier | None = None
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.oidc = oidc

    async def authenticate(self, token: str, *, client_addr: str | None = None) -> Principal:
        """Raises `Unauthenticated` (with the reason) or `RateLimited`."""
        if token.startswith(TOKEN_PREFIX):
            principal = await self.tokens.verify(token)
        elif looks_like_jwt(token):
            if self.oidc is None:
                raise Unauthenticated(
                    "this server accepts no OIDC tokens (no issuer is configured); use an API token"
                )
            principal = await self.oidc.verify(token, client_addr=client_addr)
        else:
            raise Unauthenticated("the bearer token is neither an API token nor a JWT")
        self.limiter.check(principal.user)
        return replace(principal, client_addr=client_addr)

    def charge(self, actor: Principal, *, units: int) -> None:
        """Count `units` more against the actor's rate limit (the mutations of one request
        beyond the first, which the request itself paid for); `RateLimited` when over."""
        self.limiter.check(actor.user, units=units)
