"""The one error type of the OIDC verifier that is not a plain `Unauthenticated`."""

from __future__ import annotations

from app.domain.errors import Unauthenticated

KEYS_UNAVAILABLE = "cannot verify the token: the identity provider's keys are unavailable"


class IdentityProviderUnavailable(Unauthenticated):
    """The identity provider's discovery document or JWKS could not be fetched.

    It *is* an `Unauthenticated` (code UNAUTHENTICATED, so HTTP 401 through the existing
    mappings): the request is refused either way. Callers that want to say "try again
    later" instead (HTTP 503) catch this subclass first.
    """

    def __init__(self, message: str = KEYS_UNAVAILABLE) -> None:
        super().__init__(message)


class ProviderResponseError(ValueError):
    """Internal: the provider answered, but with something unusable (logged, then it is
    treated like an unreachable provider)."""
