"""Typed domain errors. Each carries a stable machine `code`.

They are mapped once to GraphQL errors (`app/graphql/errors.py`) and once to HTTP
statuses (`rest_compat/envelope.py`); nothing else inspects exception types.
"""

from __future__ import annotations

from app.domain.limits import clip


class DomainError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        # Messages echo what the client sent (an id, a name): never all of it.
        message = clip(message)
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    """The client sent a job spec or argument that cannot be accepted."""

    code = "INVALID_ARGUMENT"


class CapacityExceeded(DomainError):
    """The job asks for more than its pool could ever give (its declared capacity, or
    the largest node of a Kubernetes pool): it would wait forever, so it is refused."""

    code = "EXCEEDS_POOL_CAPACITY"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    """The request is valid but does not fit the object's current state."""

    code = "CONFLICT"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    code = "FORBIDDEN"


class RuntimeUnavailable(DomainError):
    """The runtime (cluster, process supervisor) cannot be reached right now."""

    code = "RUNTIME_UNAVAILABLE"


class DatabaseUnavailable(RuntimeUnavailable):
    """The database cannot be reached right now (restarting, network cut): try again."""


class RateLimited(DomainError):
    """Too many requests from one principal; `retry_after` says when to try again."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueryTooExpensive(DomainError):
    """A GraphQL query whose cost (page sizes multiplied down the tree) is over the limit."""

    code = "QUERY_TOO_EXPENSIVE"


class PayloadTooLarge(DomainError):
    """A request body over the configured size."""

    code = "PAYLOAD_TOO_LARGE"
