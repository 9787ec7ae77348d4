"""Domain errors mapped to GraphQL, once: `userErrors` in mutation payloads, and an
`extensions.code` on the errors of queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.domain.errors import DomainError

T = TypeVar("T")


@strawberry.type(description="A problem with the request that the client can fix.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    message: str
    code: str = strawberry.field(
        description="NOT_FOUND, INVALID_ARGUMENT, CONFLICT, FORBIDDEN, RUNTIME_UNAVAILABLE ..."
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

    def on_operation(self):
        yield
        context = self.execution_context
        # Validation errors are not in a result yet when this runs.
        errors = (context.result.errors if context.result else None) or context.pre_execution_errors
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
