"""Who is asking: the bearer token of an HTTP request or WebSocket handshake, checked by
the core's IdentityService. Each entry point renders a refusal in its own shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.domain.errors import DomainError, Unauthenticated
from app.domain.principal import Principal
from app.services import Services

UNAUTHENTICATED_MESSAGE = (
    "authentication required: send 'Authorization: Bearer <token>' with a valid token "
    "(create one with `jobgraph token create --user NAME`)"
)


def get_services(conn: HTTPConnection) -> Services:
    return conn.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal, or why there is none (no credentials, a refused token, a rate limit)."""

    principal: Principal | None
    refusal: DomainError | None = None

    def require(self) -> Principal:
        if self.principal is None:
            raise self.refusal or Unauthenticated(UNAUTHENTICATED_MESSAGE)
        return self.principal


async def identify(services: Services, token: str | None, client_addr: str | None) -> Caller:
    if not token:
        return Caller(None)
    try:
        principal = await services.identity.authenticate(token, client_addr=client_addr)
    except DomainError as refusal:
        return Caller(None, refusal)
    return Caller(principal)


def credential(conn: HTTPConnection) -> str | None:
    """The bearer token of `Authorization`, else `X-Auth-Token` (the legacy console sends
    its token in both); raises `Unauthenticated` for an Authorization header that is
    not `Bearer <token>`."""
    header = conn.headers.get("authorization")
    if header:
        token = bearer_token(header)
        if token is None:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return token
    return (conn.headers.get("x-auth-token") or "").strip() or None


async def get_caller(conn: HTTPConnection, services: ServicesDep) -> Caller:
    try:
        token = credential(conn)
    except Unauthenticated as refusal:
        return Caller(None, refusal)
    return await identify(services, token, conn.client.host if conn.client else None)


CallerDep = Annotated[Caller, Depends(get_caller)]
