"""OIDC / JWT bearer-token verification (built on joserfc, authlib's JOSE library).

    verifier = OidcVerifier(OidcConfig(issuer=..., audience=...))
    if looks_like_jwt(token):
        principal = await verifier.verify(token, client_addr=addr)

Errors: `Unauthenticated` (401) whose message says why the token was refused;
`IdentityProviderUnavailable` (subclass of `Unauthenticated`) when the identity provider's
keys cannot be fetched - map it to 503 if you prefer "try again later".
"""

from app.core.oidc.compact import looks_like_jwt
from app.core.oidc.config import OidcConfig
from app.core.oidc.errors import IdentityProviderUnavailable
from app.core.oidc.verifier import OidcVerifier

__all__ = ["IdentityProviderUnavailable", "OidcConfig", "OidcVerifier", "looks_like_jwt"]
