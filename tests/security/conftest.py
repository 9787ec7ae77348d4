"""A server that accepts OIDC tokens from a real (local) identity provider, with a pool
restricted to a group; and one with a low rate limit to hit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.identity.jwks_server import JwksServer
from tests.support.server import GraphQLClient

AUDIENCE = "jobgraph"
POOLS = """
pools:
  - id: local
    runtime: local
    queues: [default]
  - id: restricted
    runtime: local
    queues: [default]
    allowedGroups: [ml-team]
"""


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.keys = [
        RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}),
        ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"}),
    ]
    await server.start()
    yield server
    await server.stop()


class Secured:
    def __init__(self, server, idp: JwksServer) -> None:
        self.server = server
        self.idp = idp
        self.clients: list[GraphQLClient] = []

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.idp.issuer, "aud": AUDIENCE, "sub": "dana", "iat": now,
                  "exp": now + 300, "groups": ["ml-team"]}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def jwt(self, key=None, *, alg: str = "RS256", **overrides: Any) -> str:
        key = key or self.idp.keys[0]
        return jwt.encode({"alg": alg, "kid": key.kid}, self.claims(**overrides), key, algorithms=[alg])

    def client(self, token: str | None) -> GraphQLClient:
        client = GraphQLClient(self.server.url, token)
        self.clients.append(client)
        return client


async def _secured(server_factory, idp, tmp_path_factory, **env: str) -> Secured:
    pools = tmp_path_factory.mktemp("pools") / "pools.yaml"
    pools.write_text(POOLS)
    server = await server_factory(
        JOBGRAPH_POOLS_FILE=str(pools),
        JOBGRAPH_OIDC_ISSUER=idp.issuer,
        JOBGRAPH_OIDC_AUDIENCE=AUDIENCE,
        JOBGRAPH_OIDC_ADMIN_GROUP="platform-admins",
        JOBGRAPH_OIDC_JWKS_MIN_REFRESH_SECONDS="0",
        **env,
    )
    server.token("root", admin=True)  # so no first-start token is printed
    server.start()
    return Secured(server, idp)


@pytest.fixture(scope="module")
async def secured(server_factory, idp, tmp_path_factory) -> AsyncIterator[Secured]:
    env = await _secured(server_factory, idp, tmp_path_factory)
    yield env
    for client in env.clients:
        await client.close()


@pytest.fixture(scope="module")
async def rate_limited(server_factory, idp, tmp_path_factory) -> AsyncIterator[Secured]:
    """The same, with a burst of 40 that practically never refills during the tests (one
    request per 100 minutes): what is refused does not depend on how fast the machine
    sends (the refill itself is tested on an injected clock, tests/unit/test_ratelimit.py)."""
    env = await _secured(
        server_factory, idp, tmp_path_factory,
        JOBGRAPH_RATE_LIMIT_PER_MINUTE="0.01", JOBGRAPH_RATE_LIMIT_BURST="40",
    )
    yield env
    for client in env.clients:
        await client.close()
