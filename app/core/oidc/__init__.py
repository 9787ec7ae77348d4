"""OIDC / JWT bearer-token verification (built on joserfc, authlib's JOSE library).

    verifier = OidcVerifier(OidcConfig(issuer=..., audience=...))
    if looks_like_jwt(token):
        principal = await verifier.verify(token, client_addr=addr)

Errors: `Unauthenticated` (401) whose message says why the token was refused;
`IdentityProviderUnavailable` (subclass of `Unauthenticated`) when the identity provider's
keys cannot be fetched - map it to 503 if you prefer "try again later".
"""

from typing import TYPE_CHECKING, Any

from app.core.oidc.compact import looks_like_jwt
from app.core.oidc.config import OidcConfig
from app.core.oidc.errors import IdentityProviderUnavailable

if TYPE_CHECKING:
    from app.core.oidc.verifier import OidcVerifier

__all__ = ["IdentityProviderUnavailable", "OidcConfig", "OidcVerifier", "looks_like_jwt"]


def __getattr__(name: str) -> Any:
    # The verifier brings joserfc and cryptography (~9 MiB of a server's memory): loaded
    # on first use, so a server without OIDC never pays for them.
    if name == "OidcVerifier":
        from app.core.oidc.verifier import OidcVerifier

        return OidcVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
