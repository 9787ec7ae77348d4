"""Mounting the facade on the app: routes, envelope error handlers, OpenAPI shapes."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.domain.errors import RuntimeUnavailable
from rest_compat import models
from rest_compat.envelope import RestError, fail
from rest_compat.executor import Operations
from rest_compat.login import login_router
from rest_compat.router import ROUTE_OPERATIONS, rest_router

PREFIX = "/api"
UNAVAILABLE_RETRY_AFTER = 5  # seconds
_STATUS_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _in_api(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = [str(p) for p in item.get("loc", ())]
        place = f"{where[0]} parameter {'.'.join(where[1:])}" if len(where) > 1 else ".".join(where)
        parts.append(f"{place}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


DESCRIPTION = """\
The REST compatibility facade (`/api`) for legacy clients; the full API is GraphQL at
`/graphql`. Every answer is the envelope `{"success", "data", "message"}` with a real
HTTP status and, on errors, a machine `code`.

- **Credentials:** `Authorization: Bearer <token>` or `X-Auth-Token: <token>`: an API
  token, an OIDC token, or the session token `POST /api/login/account` answers.
- **Status words:** a job's `status` is the legacy console's word (`Pending` for PENDING
  and QUEUED, `Running`, `Stopping`, `Completed` for SUCCEEDED, `Failed`, `Stopped`);
  `jobStatus` carries the exact GraphQL enum value. List filters take both vocabularies,
  any case (`Completed`, `ManualTermination`, `Error`, `Pending`, `QUEUED` ...). GraphQL
  keeps its enum.
- **Names:** jobs carry `name` and `userId` beside `jobName` and `owner`.
- **Cross-origin:** origins listed in `JOBGRAPH_CORS_ORIGINS` may call `/api` and
  `/graphql` from a browser (CORS); empty means same origin only.
"""


def install(app: FastAPI, operations: Operations | None = None) -> None:
    """Raises OperationsInvalid when an operation does not fit the schema: the server
    must not start with a facade that would fail on every call."""
    operations = operations or Operations.load_file(required=ROUTE_OPERATIONS)
    app.description = DESCRIPTION
    app.include_router(rest_router(operations))
    app.include_router(login_router())  # the one part not run through GraphQL (see login.py)

    @app.exception_handler(RestError)
    async def _rest_error(_: Request, exc: RestError) -> Response:
        return fail(exc)

    unavailable_elsewhere = app.exception_handlers.get(RuntimeUnavailable)

    @app.exception_handler(RuntimeUnavailable)
    async def _unavailable(request: Request, exc: RuntimeUnavailable) -> Response:
        # Raised outside an operation (the database is away while the caller is
        # identified): the envelope, 503.
        if not _in_api(request) and unavailable_elsewhere is not None:
            answer = unavailable_elsewhere(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        return fail(RestError(exc.code, exc.message, retry_after=UNAVAILABLE_RETRY_AFTER))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not _in_api(request):
            return await request_validation_exception_handler(request, exc)
        return fail(RestError("BAD_REQUEST", _validation_message(exc)))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if not _in_api(request):
            return await http_exception_handler(request, exc)
        code = _STATUS_CODES.get(exc.status_code, "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return fail(RestError(code, f"{request.method} {request.url.path}: {message}", status=exc.status_code))

    _document_request_models(app)


def _document_request_models(app: FastAPI) -> None:
    """Request bodies are read raw (the core validates them); their shapes still belong
    in /docs, so add the models to the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        _, defs = models_json_schema(
            [(m, "validation") for m in models.REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in defs.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
