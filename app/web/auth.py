"""Who is asking: the bearer token of an HTTP request or WebSocket handshake, checked by
the core's IdentityService. Each entry point renders a refusal in its own shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
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
# schemes: only for the OpenAPI document (`document_credentials`). The request is read by
# `credential` itself, in one dependency: each of FastAPI's dependencies costs the hot
# path more than reading two headers does (bench/README.md).
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


def credential(conn: HTTPConnection) -> str | None:
    """The one place that decides which credential a request carries: the bearer token
    of `Authorization`, else `X-Auth-Token` (the legacy console sends its token in both);
    raises `Unauthenticated` for an Authorization header that is not `Bearer <token>`."""
    authorization = conn.headers.get("authorization")
    if authorization:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return token
    return (conn.headers.get("x-auth-token") or "").strip() or None


# Where a request's caller is kept once identified (app/web/answer_cache.py does it
# before routing), so that a request is identified, and rate-limited, once.
CALLER_STATE = "jobgraph.caller"


async def identify_request(conn: HTTPConnection) -> Caller:
    try:
        token = credential(conn)
    except Unauthenticated as refusal:
        return Caller(None, refusal)
    services: Services = conn.app.state.services
    return await identify(services, token, conn.client.host if conn.client else None)


async def get_caller(conn: HTTPConnection) -> Caller:
    known = conn.scope.get("state", {}).get(CALLER_STATE)
    return known if known is not None else await identify_request(conn)


EITHER_CREDENTIAL: list[dict[str, list[str]]] = [{BEARER.scheme_name: []}, {LEGACY_TOKEN.scheme_name: []}]


class IdentifiedRoute(APIRoute):
    """A route that asks who is calling: documented in OpenAPI as taking either
    credential (the schemes themselves: `document_credentials`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.openapi_extra = {**(self.openapi_extra or {}), "security": EITHER_CREDENTIAL}


def document_credentials(document: dict[str, Any]) -> None:
    """Put the two credential schemes in an OpenAPI document."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in (BEARER, LEGACY_TOKEN):
        schemes[scheme.scheme_name] = scheme.model.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )


CallerDep = Annotated[Caller, Depends(get_caller)]
