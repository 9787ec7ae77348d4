"""Who is asking: the bearer token of an HTTP request or WebSocket handshake."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.domain.principal import Principal
from app.services import Services


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


async def authenticate(services: Services, token: str | None, client_addr: str | None) -> Principal | None:
    if not token:
        return None
    principal = await services.tokens.authenticate(token)
    if principal is None:
        return None
    return Principal(
        user=principal.user,
        is_admin=principal.is_admin,
        groups=principal.groups,
        client_addr=client_addr,
    )


async def get_principal(conn: HTTPConnection, services: ServicesDep) -> Principal | None:
    """The caller, or None when no valid credentials came (callers decide how to refuse)."""
    client = conn.client.host if conn.client else None
    return await authenticate(services, bearer_token(conn.headers.get("authorization")), client)


PrincipalDep = Annotated[Principal | None, Depends(get_principal)]

UNAUTHENTICATED_MESSAGE = (
    "authentication required: send 'Authorization: Bearer <token>' with a valid token "
    "(create one with `jobgraph token create --user NAME`)"
)
