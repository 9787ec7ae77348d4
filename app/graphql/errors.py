"""Domain errors mapped to GraphQL, once: `userErrors` in mutation payloads, and an
`extensions.code` on the errors of queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types import ExecutionContext

from app.domain.errors import DomainError
from app.domain.limits import clip

log = structlog.get_logger(__name__)

T = TypeVar("T")
INTERNAL = "INTERNAL"


@strawberry.type(description="A problem with the request that the client can fix.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    message: str
    code: str = strawberry.field(
        description="NOT_FOUND, INVALID_ARGUMENT, CONFLICT, FORBIDDEN, EXCEEDS_POOL_CAPACITY, "
        "RUNTIME_UNAVAILABLE ..."
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(field=error.field, message=error.message, code=error.code)


async def user_errors(call: Callable[[], Awaitable[T]]) -> tuple[T | None, list[UserError]]:
    """Run a mutation's use case; domain errors become `userErrors`."""
    try:
        return await call(), []
    except DomainError as error:
        return None, [UserError.of(error)]


def _code_of(error: GraphQLError) -> str | None:
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code
    if (original is None or isinstance(original, GraphQLError)) and not (error.extensions or {}).get("code"):
        # Parse and validation errors carry no original error; variables that do not
        # coerce (a scalar's parse error) carry a GraphQLError.
        variable = error.message.startswith("Variable '$")
        return "GRAPHQL_VALIDATION_FAILED" if error.nodes or error.locations or variable else None
    return None


class ErrorCodes(SchemaExtension):
    """Adds `extensions.code` to errors so clients (and the REST facade) can branch on it."""

    def on_validate(self):
        yield
        # A subscription's validation errors are sent before `on_operation` ends: coded here.
        _add_codes(self.execution_context.pre_execution_errors)

    def on_operation(self):
        yield
        context = self.execution_context
        # Validation errors are not in a result yet when this runs.
        _add_codes((context.result.errors if context.result else None) or context.pre_execution_errors)


def _add_codes(errors) -> None:
    for error in errors or ():
        code = _code_of(error)
        if code:
            error.extensions = {**(error.extensions or {}), "code": code}
            if isinstance(error.original_error, DomainError) and error.original_error.field:
                error.extensions["field"] = error.original_error.field


def should_mask(error: GraphQLError) -> bool:
    """Mask only unexpected exceptions; domain and GraphQL errors speak to the client."""
    original = error.original_error
    return original is not None and not isinstance(original, (DomainError, GraphQLError))


class MaskUnexpectedErrors(MaskErrors):
    """Hides what nobody expected behind "Unexpected error." with the code INTERNAL, so
    neither the client nor the REST facade mistakes it for an error of its own request
    (a masked error has no original error, which otherwise reads as a validation one)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL}
        return masked


def is_client_error(error: GraphQLError) -> bool:
    """Parse, validation and coercion errors (no original error, or a GraphQLError) and
    domain errors (not found, invalid argument, auth, rate limit ...) are the client's."""
    original = error.original_error
    return original is None or isinstance(original, (DomainError, GraphQLError))


class LoggedErrorsSchema(strawberry.Schema):
    """Strawberry logs every error with a traceback; here an expected client error is
    one structured line, and only what nobody expected keeps its traceback."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        operation = execution_context.operation_name if execution_context else None
        # A subscription's domain errors (e.g. not found) go out without passing
        # `on_operation`'s end; they pass here first on every path.
        _add_codes(e for e in errors if isinstance(e.original_error, DomainError))
        for error in errors:
            path = ".".join(str(p) for p in error.path) if error.path else None
            if is_client_error(error):
                # Codes are added when the operation ends; validation ends it earlier.
                code = (error.extensions or {}).get("code") or _code_of(error)
                log.info("graphql.refused", code=code, error=clip(error.message),
                         path=path, operation=operation)
            else:
                log.error("graphql.failed", error=clip(error.message), path=path,
                          operation=operation, exc_info=error.original_error)
