"""Verifying an OIDC / JWT bearer token into a `Principal`."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import BadSignatureError, DecodeError, ExceededSizeError, JoseError
from joserfc.jws import JWSRegistry

from app.core.oidc.claims import check_claims, principal_of
from app.core.oidc.compact import CompactToken, describe_alg, malformed, parse_compact
from app.core.oidc.config import KEY_TYPE_OF_ALGORITHM, OidcConfig
from app.core.oidc.jwks import JwksCache
from app.core.oidc.keyset import VerificationKey
from app.domain.errors import Unauthenticated
from app.domain.principal import Principal

# Verified tokens remembered until their `exp`; the least recently used go first past this.
MAX_VERIFIED_TOKENS = 10_000


class OidcVerifier:
    """Verifies bearer JWTs against the issuer's JWKS.

    Raises `Unauthenticated` with the reason in the message; `IdentityProviderUnavailable`
    (a subclass) when the provider's keys cannot be fetched at all. Messages never
    contain the token or anything copied out of it except a well-formed `alg` name.

    One instance per process (it owns the JWKS cache); safe for concurrent use on one
    event loop. `http_client`, if given, is used for discovery/JWKS and never closed here.
    `clock` (monotonic seconds, for the JWKS cache) and `now` (epoch seconds, for exp/nbf/
    iat) exist for tests.
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._now = now
        self._allowed = frozenset(a for a in config.algorithms if a in KEY_TYPE_OF_ALGORITHM)
        self._registries: dict[str, JWSRegistry] = {}
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self.jwks = JwksCache(
            issuer=config.issuer,
            jwks_url=config.jwks_url,
            cache_seconds=config.jwks_cache_seconds,
            min_refresh_seconds=config.jwks_min_refresh_seconds,
            timeout_seconds=config.http_timeout_seconds,
            http_client=http_client,
            clock=clock,
        )

    async def verify(self, token: str, *, client_addr: str | None = None) -> Principal:
        # A token verified before is taken on trust until its own `exp`: the signature and
        # claims cannot have changed (the key is the token's hash, so a tampered copy is
        # another key and is verified in full).
        key = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(key)
        if cached is not None:
            principal, expires = cached
            if self._now() < expires:
                self._verified.move_to_end(key)
                return replace(principal, client_addr=client_addr)
            del self._verified[key]
        parsed = parse_compact(token)
        self._check_algorithm(parsed.alg)
        claims = self._verify_signature(parsed, await self._keys_for(parsed))
        check_claims(claims, self.config, now=int(self._now()))
        principal = principal_of(claims, self.config, client_addr=client_addr)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            self._verified[key] = (principal, float(exp))
            while len(self._verified) > MAX_VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return principal

    def _check_algorithm(self, alg: str) -> None:
        # KEY_TYPE_OF_ALGORITHM has no "none" and no HS*, whatever the configuration says.
        if alg not in self._allowed or alg not in KEY_TYPE_OF_ALGORITHM:
            raise Unauthenticated(
                f"algorithm not allowed: {describe_alg(alg)} "
                f"(accepted: {', '.join(sorted(self._allowed))})"
            )

    async def _keys_for(self, parsed: CompactToken) -> list[VerificationKey]:
        keys = await self.jwks.current()
        candidates = keys.candidates(parsed.kid, parsed.alg)
        if candidates:
            return candidates
        if keys.has_kid(parsed.kid):
            # The key exists but is of another type/curve/alg: no point re-fetching.
            raise Unauthenticated(
                f"algorithm not allowed: {describe_alg(parsed.alg)} does not match "
                "the type of the signing key the token names"
            )
        keys = await self.jwks.refresh_for_unknown_key()
        candidates = keys.candidates(parsed.kid, parsed.alg)
        if not candidates:
            wanted = "the token's key id" if parsed.kid is not None else "the token's algorithm"
            raise Unauthenticated(
                f"unknown signing key: the identity provider publishes no key for {wanted}"
            )
        return candidates

    def _verify_signature(
        self, parsed: CompactToken, candidates: list[VerificationKey]
    ) -> dict[str, Any]:
        registry = self._registry(parsed.alg)
        payload: bytes | None = None
        for key in candidates:
            try:
                payload = jws.deserialize_compact(parsed.raw, key, registry=registry).payload
                break
            except BadSignatureError:
                continue
            except (DecodeError, ExceededSizeError):
                raise malformed("cannot decode the signed content") from None
            except JoseError:
                continue  # this key cannot be used for this token; try the next one
        if payload is None:
            raise Unauthenticated("bad signature")
        try:
            claims = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise malformed("the payload is not JSON") from None
        if not isinstance(claims, dict):
            raise malformed("the payload is not a JSON object")
        return claims

    def _registry(self, alg: str) -> JWSRegistry:
        registry = self._registries.get(alg)
        if registry is None:
            # Exactly one algorithm per verification: the one already vetted above.
            # Unknown (non-critical) header parameters are tolerated, as IdPs add some.
            registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
            registry.max_header_length = 8 * 1024  # room for an x5c chain
            self._registries[alg] = registry
        return registry
