"""A tiny identity provider for tests: discovery document + JWKS over real HTTP.

Serves on 127.0.0.1 (port 0), counts the requests it answers per path, lets a test
rotate keys, fail requests, or hold JWKS answers until released (to make concurrency
deterministic without sleeping).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web
from joserfc.jwk import ECKey, RSAKey

ISSUER_PATH = "/realms/test"
DISCOVERY_PATH = ISSUER_PATH + "/.well-known/openid-configuration"
JWKS_PATH = ISSUER_PATH + "/protocol/openid-connect/certs"


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[RSAKey | ECKey] = []
        self.extra_entries: list[dict[str, Any]] = []  # raw JWKS entries, served as-is
        self.requests: Counter[str] = Counter()
        self.fail_status: int | None = None
        self.discovery_issuer: str | None = None  # None: the real issuer
        self._release = asyncio.Event()
        self._release.set()
        self.jwks_waiting = asyncio.Event()  # set when a JWKS request is being held
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def issuer(self) -> str:
        return self.base_url + ISSUER_PATH

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def jwks_fetches(self) -> int:
        return self.requests[JWKS_PATH]

    @property
    def discovery_fetches(self) -> int:
        return self.requests[DISCOVERY_PATH]

    def hold(self) -> None:
        """Make JWKS requests wait until `release()`."""
        self._release.clear()
        self.jwks_waiting.clear()

    def release(self) -> None:
        self._release.set()

    async def start(self) -> JwksServer:
        app = web.Application()
        app.router.add_get(DISCOVERY_PATH, self._discovery)
        app.router.add_get(JWKS_PATH, self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if self.fail_status:
            return web.Response(status=self.fail_status)
        return web.json_response(
            {
                "issuer": self.discovery_issuer or self.issuer,
                "jwks_uri": self.jwks_url,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if not self._release.is_set():
            self.jwks_waiting.set()
            await self._release.wait()
        if self.fail_status:
            return web.Response(status=self.fail_status)
        entries = [key.as_dict(private=False) for key in self.keys] + self.extra_entries
        return web.json_response({"keys": entries})
