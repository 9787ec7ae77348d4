"""Checking a verified token's claims and turning them into a `Principal`."""

from __future__ import annotations

import re
from typing import Any

from joserfc.errors import ExpiredTokenError, InvalidClaimError, MissingClaimError
from joserfc.jwt import JWTClaimsRegistry

from app.core.oidc.config import OidcConfig
from app.domain.errors import Unauthenticated
from app.domain.principal import Principal

MAX_USER_LENGTH = 255
_GROUP_SEPARATORS = re.compile(r"[,\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_claims(claims: dict[str, Any], config: OidcConfig, *, now: int) -> None:
    """exp (required, not past), nbf/iat (not in the future), iss, aud - with clock skew."""
    registry = JWTClaimsRegistry(
        now=now,
        leeway=config.clock_skew_seconds,
        iss={"essential": True, "value": config.issuer},
        aud={"essential": True, "value": config.audience},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Unauthenticated("token expired") from None
    except MissingClaimError as error:
        # `error.claim` lists names from our own required set, never token content.
        raise Unauthenticated(f"invalid token: missing required claim(s) {error.claim}") from None
    except InvalidClaimError as error:
        raise Unauthenticated(_invalid_claim_reason(error.claim, config)) from None


def _invalid_claim_reason(claim: str, config: OidcConfig) -> str:
    if claim == "nbf":
        return "token not yet valid"
    if claim == "iat":
        return "token not yet valid: issued in the future"
    if claim == "iss":
        return f"wrong issuer: the token was not issued by {config.issuer!r}"
    if claim == "aud":
        return f"wrong audience: the token is not meant for {config.audience!r}"
    # Only registered claim names (exp, sub, jti, ...) reach here.
    return f"invalid token: malformed {claim!r} claim"


def claim_at(claims: dict[str, Any], path: str) -> object:
    """The claim named `path`; failing that, follow it as a dotted path into nested objects."""
    if path in claims:
        return claims[path]
    node: object = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def user_of(claims: dict[str, Any], config: OidcConfig) -> str:
    value = claim_at(claims, config.user_claim)
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_USER_LENGTH
        or _CONTROL.search(value)
    ):
        raise Unauthenticated(
            f"invalid token: missing user claim {config.user_claim!r} "
            "(absent, empty or not a plain string)"
        )
    return value


def groups_of(claims: dict[str, Any], config: OidcConfig) -> tuple[str, ...]:
    """A list of strings, or one string of space- or comma-separated names. Else none."""
    value = claim_at(claims, config.groups_claim)
    if isinstance(value, str):
        names: list[object] = list(_GROUP_SEPARATORS.split(value))
    elif isinstance(value, list):
        names = value
    else:
        return ()
    groups: dict[str, None] = {}  # ordered and de-duplicated
    for name in names:
        if isinstance(name, str) and name.strip() and not _CONTROL.search(name):
            groups[name.strip()] = None
    return tuple(groups)


def principal_of(
    claims: dict[str, Any], config: OidcConfig, *, client_addr: str | None
) -> Principal:
    groups = groups_of(claims, config)
    return Principal(
        user=user_of(claims, config),
        is_admin=config.admin_group is not None and config.admin_group in groups,
        groups=groups,
        client_addr=client_addr,
    )
