"""Who is asking: the bearer token of an HTTP request or WebSocket handshake, checked by
the core's IdentityService. Each entry point renders a refusal in its own shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from app.domain.errors import DomainError, Unauthenticated
from app.domain.principal import Principal
from app.services import Services

UNAUTHENTICATED_MESSAGE = (
    "authentication required: send 'Authorization: Bearer <token>' with a valid token "
    "(create one with `jobgraph token create --user NAME`)"
)


async def get_services(conn: HTTPConnection) -> Services:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hand-off per
    # request for an attribute read.
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


# How a request (or WebSocket handshake) carries its credential, as FastAPI security
# schemes: they read the headers and put the schemes in the OpenAPI document. They never
# answer by themselves (auto_error=False): each entry point renders refusals its own way.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="`Authorization: Bearer <token>`: an API token (`jobgraph token create`), "
    "a login session's token, or an OIDC access token.",
)
LEGACY_TOKEN = APIKeyHeader(
    name="X-Auth-Token",
    auto_error=False,
    scheme_name="legacyAuthToken",
    description="The same token in `X-Auth-Token`, as the legacy console sends it.",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
LegacyTokenDep = Annotated[str | None, Depends(LEGACY_TOKEN)]


def choose_credential(
    conn: HTTPConnection, bearer: HTTPAuthorizationCredentials | None, legacy_token: str | None
) -> str | None:
    """The one place that decides which credential a request carries: the bearer token
    of `Authorization`, else `X-Auth-Token` (the legacy console sends its token in both);
    raises `Unauthenticated` for an Authorization header that is not `Bearer <token>`."""
    if bearer is not None:
        return bearer.credentials
    if conn.headers.get("authorization"):
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return (legacy_token or "").strip() or None


async def credential(conn: HTTPConnection) -> str | None:
    """`choose_credential` outside dependency injection."""
    return choose_credential(conn, await BEARER(conn), await LEGACY_TOKEN(conn))


async def get_caller(
    conn: HTTPConnection, services: ServicesDep, bearer: BearerDep, legacy_token: LegacyTokenDep
) -> Caller:
    try:
        token = choose_credential(conn, bearer, legacy_token)
    except Unauthenticated as refusal:
        return Caller(None, refusal)
    return await identify(services, token, conn.client.host if conn.client else None)


CallerDep = Annotated[Caller, Depends(get_caller)]
