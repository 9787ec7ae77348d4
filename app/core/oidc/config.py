"""OIDC settings and the algorithm policy."""

from __future__ import annotations

from dataclasses import dataclass

# The only algorithms jobgraph will ever verify, with the key type each one needs.
# Symmetric algorithms (HS256/384/512) are absent on purpose: with a public JWKS, an
# HMAC "secret" is whatever the attacker says it is (the RS256 -> HS256 confusion attack).
# "none" is absent for the obvious reason.
KEY_TYPE_OF_ALGORITHM: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
}
# ECDSA pins the curve to the algorithm (RFC 7518 section 3.4).
CURVE_OF_ALGORITHM: dict[str, str] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Where tokens come from and how their claims map onto a `Principal`.

    `jwks_url` None means: discover it from `<issuer>/.well-known/openid-configuration`.
    `user_claim` / `groups_claim` may be dotted paths into nested claims
    (`realm_access.roles` for Keycloak); a claim whose literal name contains dots
    (`https://example.com/groups`) is found first.
    `jwks_min_refresh_seconds` bounds how often a token naming an unknown key id can make
    us re-fetch the JWKS; `http_timeout_seconds` bounds each discovery/JWKS request.
    """

    issuer: str
    audience: str
    jwks_url: str | None = None
    user_claim: str = "sub"
    groups_claim: str = "groups"
    admin_group: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    clock_skew_seconds: int = 60
    jwks_cache_seconds: int = 300
    jwks_min_refresh_seconds: float = 10.0
    http_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        # Misconfiguration fails at startup, loudly, rather than on every request.
        if not self.issuer:
            raise ValueError("OIDC issuer must be set")
        if not self.audience:
            raise ValueError("OIDC audience must be set")
        if not self.user_claim:
            raise ValueError("OIDC user claim must be set")
        if not self.groups_claim:
            raise ValueError("OIDC groups claim must be set")
        if isinstance(self.algorithms, str) or not self.algorithms:
            raise ValueError("OIDC algorithms must be a non-empty tuple of algorithm names")
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        refused = [a for a in self.algorithms if a not in KEY_TYPE_OF_ALGORITHM]
        if refused:
            raise ValueError(
                f"OIDC algorithms {refused} are not accepted; only asymmetric signatures "
                f"({', '.join(KEY_TYPE_OF_ALGORITHM)}) are verified - never 'none' or HS*"
            )
        if self.clock_skew_seconds < 0:
            raise ValueError("OIDC clock skew must not be negative")
        if self.jwks_cache_seconds <= 0:
            raise ValueError("OIDC JWKS cache time must be positive")
        if self.jwks_min_refresh_seconds < 0:
            raise ValueError("OIDC JWKS minimum refresh interval must not be negative")
        if self.http_timeout_seconds <= 0:
            raise ValueError("OIDC HTTP timeout must be positive")
