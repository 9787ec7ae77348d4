"""The legacy envelope `{"success", "data", "message"}` and the one table that maps
error codes (GraphQL `extensions.code`, `userErrors[].code`) to HTTP statuses."""

from __future__ import annotations

import math
import re
from typing import Any

from graphql import GraphQLError
from starlette.responses import JSONResponse
from strawberry.types import ExecutionResult

from app.domain.limits import clip

# The only place a code becomes an HTTP status. INVALID_ARGUMENT depends on the route:
# an invalid job spec is 422, a malformed list/page/log argument is 400.
HTTP_STATUS: dict[str, int] = {
    "BAD_REQUEST": 400,  # the request itself is malformed (JSON, types, shape)
    "GRAPHQL_VALIDATION_FAILED": 400,  # variables that do not coerce to the schema's types
    "GRAPHQL_PARSE_FAILED": 400,
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    # A job its pool could never run: the spec is well-formed but unacceptable, like an
    # invalid job spec on create (422).
    "EXCEEDS_POOL_CAPACITY": 422,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "QUERY_TOO_EXPENSIVE": 400,
    "RUNTIME_UNAVAILABLE": 503,
}
INVALID_SPEC_STATUS = 422
INTERNAL = "INTERNAL"


class RestError(Exception):
    """A failed REST call: becomes an envelope with success false and a real status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = clip(message)  # it may echo what the client sent
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code
        self.message = message
        self.field = field
        self.status = status or HTTP_STATUS.get(code, 500)


def http_status(code: str | None, *, invalid_argument: int = 400) -> int:
    if code == "INVALID_ARGUMENT":
        return invalid_argument
    return HTTP_STATUS.get(code or INTERNAL, 500)


def ok(data: Any = None, message: str = "") -> dict[str, Any]:
    """A success envelope; FastAPI validates it against the route's response model."""
    return {"success": True, "data": data, "message": message}


def failure_body(error: RestError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": False, "data": None, "message": error.message, "code": error.code
    }
    if error.field:
        body["field"] = error.field
    return body


def fail(error: RestError, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The envelope of `error` with its real status; `extra` fields join the body."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse({**failure_body(error), **(extra or {})}, status_code=error.status, headers=headers)


# graphql-core: "Variable '$input' has invalid value at .replicas: Int cannot represent ..."
# (older: "Variable '$input' got invalid value 'two' at 'input.replicas'; Int ...")
_COERCION = re.compile(
    r"^Variable '\$(?P<var>\w+)' (?:has invalid value(?: at \.(?P<path>[^:]+))?: "
    r"|got invalid value .*?(?: at '\w+\.(?P<oldpath>[^']+)')?; )(?P<detail>.*)$",
    re.S,
)


def _client_message(message: str, variable_names: dict[str, str]) -> tuple[str, str | None]:
    """Coercion messages name GraphQL variables; say it with the REST field instead."""
    match = _COERCION.match(message)
    if not match:
        return message, None
    field = match["path"] or match["oldpath"] or variable_names.get(match["var"], match["var"])
    return f"{field}: {match['detail']}", field


def error_of(
    result: ExecutionResult,
    payload: dict[str, Any] | None = None,
    *,
    invalid_argument: int = 400,
    variable_names: dict[str, str] | None = None,
) -> RestError | None:
    """The first error of a result (GraphQL errors, then a payload's userErrors)."""
    for error in result.errors or ():
        code = (error.extensions or {}).get("code") if isinstance(error, GraphQLError) else None
        message, field = _client_message(error.message, variable_names or {})
        field = (error.extensions or {}).get("field") or field
        field = (variable_names or {}).get(field, field) if field else field
        return RestError(
            code or INTERNAL, message, field=field,
            status=http_status(code, invalid_argument=invalid_argument),
        )
    for user_error in (payload or {}).get("userErrors") or ():
        code = user_error.get("code")
        return RestError(
            code or INTERNAL, user_error["message"], field=user_error.get("field"),
            status=http_status(code, invalid_argument=invalid_argument),
        )
    return None
