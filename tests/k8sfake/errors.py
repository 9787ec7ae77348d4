"""Exact ``metav1.Status`` bodies (k8s.io/apimachinery/pkg/api/errors/errors.go).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

HTTP_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class StatusError(Exception):
    """Raised inside the fake; rendered as a ``metav1.Status`` response."""

    def __init__(self, status: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])

    def response(self) -> web.Response:
        return status_response(self.status, headers=self.headers)


def status_body(code: int, reason: str, message: str | None = None,
                details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure"}
    if message is not None:
        body["message"] = message
    body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def status_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=int(body["code"]), body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    details.update({k: v for k, v in extra.items() if v is not None})
    return details


def not_found(resource: str, group: str, name: str) -> StatusError:
    return StatusError(status_body(404, "NotFound",
                                   f'{qualified(resource, group)} "{name}" not found',
                                   _details(name, resource, group)))


def path_not_found() -> StatusError:
    return StatusError(status_body(404, "NotFound",
                                   "the server could not find the requested resource",
                                   {"causes": [{"reason": "UnexpectedServerResponse",
                                                "message": "404 page not found"}]}))


def rbac_forbidden(verb: str, resource: str, group: str, namespace: str | None,
                   name: str | None, user: str) -> StatusError:
    """The authorizer's denial (apiserver endpoints/handlers/responsewriters/errors.go
    ``forbiddenMessage`` + ``NewForbidden``)."""
    what = qualified(resource, group)
    subject = f'{what} "{name}"' if name else what
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
               f'in API group "{group}" {scope}')
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return StatusError(status_body(403, "Forbidden", message, details))


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(status_body(409, "AlreadyExists",
                                   f'{qualified(resource, group)} "{name}" already exists',
                                   _details(name, resource, group)))


def conflict(resource: str, group: str, name: str, detail: str | None = None) -> StatusError:
    detail = detail or ("the object has been modified; please apply your changes to the "
                        "latest version and try again")
    return StatusError(status_body(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {detail}',
        _details(name, resource, group)))


def bad_request(message: str) -> StatusError:
    return StatusError(status_body(400, "BadRequest", message))


def method_not_allowed(resource: str, group: str, action: str) -> StatusError:
    """``NewMethodNotSupported``: e.g. ``create is not supported on resources of kind "pods/log"``."""
    details: dict[str, Any] = {}
    if group:
        details["group"] = group
    details["kind"] = resource
    return StatusError(status_body(405, "MethodNotAllowed",
                                   f'{action} is not supported on resources of kind '
                                   f'"{qualified(resource, group)}"', details))


def unsupported_media_type(content_type: str, *, custom: bool = False) -> StatusError:
    """Custom resources take no strategic merge patch (apiserver's crdHandler lists the
    others, apply included)."""
    accepted = ("application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml" if custom else
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json")
    return StatusError(status_body(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - "
                                   f"accepted media types include: {accepted}"))


def unauthorized() -> StatusError:
    return StatusError(status_body(401, "Unauthorized", "Unauthorized"))


def expired(message: str) -> StatusError:
    return StatusError(status_body(410, "Expired", message))


def internal_error(message: str) -> StatusError:
    return StatusError(status_body(500, "InternalError",
                                   f"Internal error occurred: {message}",
                                   {"causes": [{"message": message}]}))


def too_many_requests(retry_after: int = 1) -> StatusError:
    return StatusError(status_body(429, "TooManyRequests",
                                   "Too many requests, please try again later.",
                                   {"retryAfterSeconds": retry_after}),
                       headers={"Retry-After": str(retry_after)})


def generic(code: int, message: str | None = None) -> StatusError:
    """A Status for an injected fault (``fail_next``), as the apiserver's NewGenericServerResponse."""
    reasons = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
               422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
               503: "ServiceUnavailable", 504: "Timeout"}
    if code == 429:
        return too_many_requests()
    if code == 500:
        return internal_error(message or "injected fault")
    return StatusError(status_body(code, reasons.get(code, "Unknown"),
                                   message or f"injected fault ({code})"))


# --- field errors (k8s.io/apimachinery/pkg/util/validation/field) ---------------------------

def _fmt_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class FieldError:
    def __init__(self, kind: str, field: str, body: str) -> None:
        self.kind, self.field, self.body = kind, field, body

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field,
                      "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, f"Invalid value: {_fmt_value(value)}: {detail}")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError("FieldValueNotSupported", field,
                      f"Unsupported value: {_fmt_value(value)}: supported values: "
                      + ", ".join(json.dumps(s) for s in supported))


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, f"Duplicate value: {_fmt_value(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, f"Forbidden: {detail}")


def too_many(field: str, actual: int, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", field,
                      f"Too many: {actual}: must have at most {limit} items")


def too_long(field: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", field, f"Too long: may not be more than {limit} bytes")


def invalid_error(kind: str, group: str, name: str, errs: list[FieldError]) -> StatusError:
    qkind = f"{kind}.{group}" if group else kind
    agg = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.kind, "message": e.body, "field": e.field} for e in errs]
    return StatusError(status_body(422, "Invalid", f'{qkind} "{name}" is invalid: {agg}', details))
