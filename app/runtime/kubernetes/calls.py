"""Kubernetes API errors as the core's errors, and a retry for passing faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from app.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    RuntimeUnavailable,
    ValidationFailed,
)

T = TypeVar("T")
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
RETRIES = 2
# (connect, read) seconds for ordinary requests: a hung cluster must not hang the API.
REQUEST_TIMEOUT = (10, 60)


def status_message(error: ApiException) -> str:
    try:
        message = json.loads(error.body or "").get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or error.reason)


def domain_error(error: Exception, *, what: str) -> DomainError:
    if isinstance(error, ApiException):
        message = status_message(error)
        if error.status == 404:
            return NotFound(f"{what}: {message}")
        if error.status == 409:
            return Conflict(f"{what}: {message}")
        if error.status == 403 and message.startswith("admission webhook"):
            # A validating webhook (Kueue's, say) refused the change: not a missing
            # permission (apiserver admission/plugin/webhook/errors ToStatusErr).
            return Conflict(f"{what}: {message}")
        if error.status == 403:
            return PermissionDenied(
                f"{what}: jobgraph's service account lacks a permission in the cluster "
                f"({message}); see deploy/rbac.yaml"
            )
        if error.status in (400, 422):
            return ValidationFailed(f"{what}: the cluster rejected it: {message}")
        if error.status == 401:
            return RuntimeUnavailable(f"{what}: the cluster refused jobgraph's credentials")
        return RuntimeUnavailable(f"{what}: the cluster answered {error.status} ({message})")
    return RuntimeUnavailable(f"{what}: the cluster cannot be reached ({error.__class__.__name__}: {error})")


def _transient(error: Exception) -> bool:
    if isinstance(error, ApiException):
        return error.status >= 500 or error.status == 429
    return isinstance(error, CONNECTION_ERRORS)


async def call(what: str, request: Callable[[], Awaitable[T]]) -> T:
    """Run an idempotent API request, retrying a passing 5xx or connection fault, and
    raise the core's error when it still fails."""
    for attempt in range(RETRIES + 1):
        try:
            return await request()
        except (ApiException, *CONNECTION_ERRORS) as error:
            if attempt < RETRIES and _transient(error):
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            raise domain_error(error, what=what) from error
    raise AssertionError("unreachable")
