"""A fetched JWKS turned into verification keys, and key selection for a token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from joserfc import jwk
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from app.core.oidc.compact import b64url_decode
from app.core.oidc.config import CURVE_OF_ALGORITHM, KEY_TYPE_OF_ALGORITHM, MIN_RSA_BITS
from app.core.oidc.errors import ProviderResponseError

log = structlog.get_logger(__name__)

# Public members only: a JWKS that (wrongly) carries private parts must not make us hold them.
_PUBLIC_MEMBERS = {
    "RSA": ("kty", "n", "e", "kid", "alg", "use", "key_ops"),
    "EC": ("kty", "crv", "x", "y", "kid", "alg", "use", "key_ops"),
}

VerificationKey = RSAKey | ECKey


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    keys: tuple[VerificationKey, ...]

    def has_kid(self, kid: str | None) -> bool:
        return kid is not None and any(key.kid == kid for key in self.keys)

    def candidates(self, kid: str | None, alg: str) -> list[VerificationKey]:
        """Keys that may verify a token signed with `alg` (and naming `kid`, if it does).

        The key type must match the algorithm family (RSA for RS*/PS*, EC with the right
        curve for ES*), and a key that pins its own `alg` must pin this one.
        """
        family = KEY_TYPE_OF_ALGORITHM[alg]
        found = []
        for key in self.keys:
            if kid is not None and key.kid != kid:
                continue
            if key.key_type != family:
                continue
            if isinstance(key, ECKey) and key.curve_name != CURVE_OF_ALGORITHM[alg]:
                continue
            if key.alg is not None and key.alg != alg:
                continue
            found.append(key)
        return found


def parse_jwks(document: object) -> KeySnapshot:
    """Keep the usable asymmetric signature keys of a JWKS document; skip (and log) the rest.

    Raises ProviderResponseError when the document is not a JWKS or has no usable key at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ProviderResponseError("the JWKS document has no 'keys' list")
    keys = tuple(_usable_keys(document["keys"]))
    if not keys:
        raise ProviderResponseError("the JWKS document has no usable signature key")
    return KeySnapshot(keys)


def _usable_keys(entries: Iterable[object]) -> Iterable[VerificationKey]:
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kty = entry.get("kty")
        if kty not in _PUBLIC_MEMBERS:
            # "oct" (symmetric) keys are never used, nor OKP for now.
            continue
        if entry.get("use", "sig") != "sig":
            continue
        key_ops = entry.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        public = {name: entry[name] for name in _PUBLIC_MEMBERS[kty] if name in entry}
        if kty == "RSA" and _rsa_bits(public.get("n")) < MIN_RSA_BITS:
            log.warning("oidc.jwks.key_skipped", kid=kid, reason="RSA key shorter than 2048 bits")
            continue
        if kty == "EC" and public.get("crv") not in CURVE_OF_ALGORITHM.values():
            log.warning("oidc.jwks.key_skipped", kid=kid, reason="unsupported curve")
            continue
        try:
            key = jwk.import_key(public)
        except (JoseError, ValueError, TypeError) as error:
            log.warning("oidc.jwks.key_skipped", kid=kid, reason=str(error))
            continue
        if isinstance(key, (RSAKey, ECKey)):
            yield key


def _rsa_bits(n: Any) -> int:
    if not isinstance(n, str):
        return 0
    try:
        return int.from_bytes(b64url_decode(n), "big").bit_length()
    except ValueError:
        return 0
