"""Fetching and caching the identity provider's JWKS.

- The key set is cached for `jwks_cache_seconds`; after that the next request re-fetches it.
- A token naming an unknown key id triggers a refresh (key rotation), but
  - at most one fetch runs at a time; concurrent requests wait on the same one, and
  - a new fetch starts at most once per `jwks_min_refresh_seconds` (counted from the
    previous attempt, successful or not), so a flood of tokens with made-up key ids,
    or a dead identity provider, cannot turn into a request storm.
- A failed fetch keeps the previous (stale) key set in use; with no key set at all the
  verifier raises `IdentityProviderUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import structlog

from app.core.oidc.errors import IdentityProviderUnavailable, ProviderResponseError
from app.core.oidc.keyset import KeySnapshot, parse_jwks

log = structlog.get_logger(__name__)

MAX_DOCUMENT_BYTES = 1024 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"


class JwksCache:
    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout_seconds: float,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._configured_url = jwks_url
        self._discovered_url: str | None = None
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._timeout = timeout_seconds
        self._http_client = http_client
        self._clock = clock
        self._snapshot: KeySnapshot | None = None
        self._fetched_at: float | None = None
        self._last_attempt_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        #: Fetch attempts started (for metrics and tests).
        self.fetch_attempts = 0

    async def current(self) -> KeySnapshot:
        """The cached key set, fetched first if there is none or it has expired."""
        if self._snapshot is None or self._expired():
            await self._refresh()
        return self._require_snapshot()

    async def refresh_for_unknown_key(self) -> KeySnapshot:
        """Re-fetch because a token named a key we do not know (rate-limited, shared)."""
        await self._refresh()
        return self._require_snapshot()

    def _expired(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_seconds

    def _require_snapshot(self) -> KeySnapshot:
        if self._snapshot is None:
            raise IdentityProviderUnavailable()
        return self._snapshot

    async def _refresh(self) -> None:
        task = self._inflight
        if task is None:
            now = self._clock()
            if (
                self._last_attempt_at is not None
                and now - self._last_attempt_at < self._min_refresh_seconds
            ):
                return
            self._last_attempt_at = now
            self.fetch_attempts += 1
            task = self._inflight = asyncio.get_running_loop().create_task(
                self._fetch_and_store(), name="oidc-jwks-refresh"
            )
        # A caller that goes away (client disconnect) must not cancel the shared fetch.
        await asyncio.shield(task)

    async def _fetch_and_store(self) -> None:
        try:
            # One deadline for the whole refresh (discovery + JWKS), on top of httpx's
            # per-operation timeouts, so a server trickling bytes cannot hold it open.
            async with asyncio.timeout(self._timeout):
                snapshot = await self._download()
        except Exception as error:  # a background fetch must never raise
            # Waiters carry on with the previous key set, if there is one.
            log.warning(
                "oidc.jwks.fetch_failed",
                error=f"{type(error).__name__}: {error}",
                stale_keys_in_use=self._snapshot is not None,
                exc_info=not isinstance(error, (httpx.HTTPError, ValueError, TimeoutError)),
            )
            self._discovered_url = None  # the provider may have moved its JWKS
        else:
            self._snapshot = snapshot
            self._fetched_at = self._clock()
            log.info("oidc.jwks.fetched", keys=len(snapshot.keys))
        finally:
            self._inflight = None

    async def _download(self) -> KeySnapshot:
        async with self._client() as client:
            url = self._configured_url or self._discovered_url
            if url is None:
                url = self._discovered_url = await self._discover(client)
            return parse_jwks(await _get_json(client, url))

    async def _discover(self, client: httpx.AsyncClient) -> str:
        document = await _get_json(client, self._issuer.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(document, dict):
            raise ProviderResponseError("the discovery document is not a JSON object")
        # OpenID Connect Discovery 1.0, section 4.3: the issuer must match exactly.
        if document.get("issuer") != self._issuer:
            raise ProviderResponseError("the discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ProviderResponseError("the discovery document has no usable 'jwks_uri'")
        return jwks_uri

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http_client is not None:
            yield self._http_client
            return
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=True) as client:
            yield client


async def _get_json(client: httpx.AsyncClient, url: str) -> object:
    # The caller holds the deadline (_fetch_and_store); httpx applies the client's own
    # per-operation timeouts.
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        if response.status_code != 200:
            raise ProviderResponseError(f"GET {url} answered HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ProviderResponseError(
                    f"GET {url} answered more than {MAX_DOCUMENT_BYTES} bytes"
                )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProviderResponseError(f"GET {url} did not answer JSON") from error
