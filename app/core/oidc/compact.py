"""The shape of a compact JWS, read before anything is verified.

Nothing here trusts the token: it only finds out whether it is well-formed, which
algorithm and key id it claims, and refuses oversized input early.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from app.domain.errors import Unauthenticated

# Far above any real ID/access token (Keycloak tokens with many roles are a few KiB),
# far below anything that could hurt.
MAX_TOKEN_LENGTH = 32 * 1024
API_TOKEN_PREFIX = "jg_"

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")
# Header values we are willing to echo back in an error message.
_PRINTABLE_ALG = re.compile(r"^[A-Za-z0-9+-]{1,16}$")


def looks_like_jwt(token: str) -> bool:
    """True for three base64url segments separated by dots (header and payload non-empty).

    Used for routing only: `jg_...` API tokens go to the token store, JWTs to the
    verifier (which then refuses malformed or unsigned ones with a reason).
    """
    if not isinstance(token, str) or token.startswith(API_TOKEN_PREFIX):
        return False
    if len(token) > MAX_TOKEN_LENGTH:
        return False
    parts = token.split(".")
    return (
        len(parts) == 3
        and bool(parts[0])
        and bool(parts[1])
        and all(_SEGMENT.match(part) for part in parts)
    )


@dataclass(frozen=True, slots=True)
class CompactToken:
    raw: str
    header: dict[str, Any]
    alg: str
    kid: str | None


def b64url_decode(segment: str) -> bytes:
    if not _SEGMENT.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def malformed(reason: str) -> Unauthenticated:
    return Unauthenticated(f"malformed token: {reason}")


def describe_alg(alg: object) -> str:
    return repr(alg) if isinstance(alg, str) and _PRINTABLE_ALG.match(alg) else "(unprintable)"


def parse_compact(token: str) -> CompactToken:
    """Split and decode the header; raise Unauthenticated('malformed token: ...')."""
    if not isinstance(token, str) or not token:
        raise malformed("empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise malformed("too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise malformed("not a JWS compact serialization (expected three dot-separated parts)")
    if not all(_SEGMENT.match(part) for part in parts):
        raise malformed("not base64url-encoded")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise malformed("the header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise malformed("the header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise malformed("the header has no algorithm ('alg')")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise malformed("the key id ('kid') is not a string")
    # We implement no JWS extensions, so any critical one must be refused (RFC 7515 4.1.11);
    # "b64": false (RFC 7797) would change what the signature covers.
    if "crit" in header or "b64" in header:
        raise malformed("unsupported critical header parameters")
    if "enc" in header:
        raise malformed("encrypted tokens (JWE) are not supported")
    return CompactToken(raw=token, header=header, alg=alg, kid=kid)
