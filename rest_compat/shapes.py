"""Shape translation between the legacy REST bodies and the GraphQL variables/results.

Spelling and layout only. Every rule about what a valid job is lives in the core; here
absent required fields are passed as empty values so that the core's own message
("name must not be empty", "command must be a non-empty list ...") reaches the client.
Two things are decided here because they are about the legacy shapes themselves:
priority words go through the domain's `parse_priority`, and status words (filters and
answers) through `rest_compat.statuses` (the console's vocabulary and the enum's)."""

from __future__ import annotations

from typing import Any

import structlog

from app.domain.errors import DomainError
from app.domain.listing import MAX_PAGE_SIZE
from app.domain.validation import parse_priority
from app.web.json_body import JSONBodyInvalid, load_json
from rest_compat.envelope import INVALID_SPEC_STATUS, RestError, http_status
from rest_compat.statuses import KNOWN_WORDS, answer_word, filter_statuses

log = structlog.get_logger(__name__)

# Without `pageSize` the legacy console pages on the client over what it gets, so an
# unpaged list answers the newest jobs in the largest page the core allows.
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE
SHELL = ["/bin/sh", "-c"]

# Accepted by the legacy shapes, not supported by any runtime yet: ignored, and logged
# (see rest_compat/README.md).
IGNORED_FIELDS = ("volumes", "datasources", "jobType")


def bad_request(message: str, field: str | None = None) -> RestError:
    return RestError("BAD_REQUEST", message, field=field)


def invalid_spec(error: DomainError) -> RestError:
    return RestError(
        error.code, error.message, field=error.field,
        status=http_status(error.code, invalid_argument=INVALID_SPEC_STATUS),
    )


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The request body as an object; no body at all counts as `{}`."""
    if not raw.strip():
        return {}
    try:
        body = load_json(raw)
    except JSONBodyInvalid as error:
        raise bad_request(error.message) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object", field=where)
    return value


def _whole_number(value: Any, where: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{where} must be an integer, got {value!r}", field=where)
    return value


# -- list -------------------------------------------------------------------------------

def list_variables(
    body: dict[str, Any], *, resource_pool_id: str | None, queue: str | None
) -> dict[str, Any]:
    page_number = _whole_number(body.get("pageNumber"), "pageNumber", 1)
    page_size = _whole_number(body.get("pageSize"), "pageSize", DEFAULT_PAGE_SIZE)
    if page_number < 1:
        raise bad_request(f"pageNumber starts at 1, got {page_number}", field="pageNumber")
    statuses = body.get("status")
    if isinstance(statuses, str):
        statuses = [statuses] if statuses.strip() else []
    if statuses is not None and not (
        isinstance(statuses, list) and all(isinstance(s, str) for s in statuses)
    ):
        raise bad_request("status must be a status name or a list of them", field="status")
    status_names: list[str] = []
    for word in statuses or ():
        selected = filter_statuses(word)
        if selected is None:
            raise RestError(
                "INVALID_ARGUMENT", f"unknown status {word!r}; use one of {KNOWN_WORDS}",
                field="status",
            )
        status_names += [s.value for s in selected if s.value not in status_names]
    job_filter = {
        "keyword": body.get("keyword") or None,
        "status": status_names or None,
        "owner": body.get("owner") or None,
        "resourcePoolId": resource_pool_id or body.get("resourcePoolId") or None,
        "queue": queue or body.get("queueID") or body.get("queue") or None,
    }
    return {
        "filter": {k: v for k, v in job_filter.items() if v is not None},
        "first": page_size,
        # Past the core's bound this is refused there, with its message.
        "offset": (page_number - 1) * max(page_size, 0),
    }


# -- create -----------------------------------------------------------------------------

def _shell(command: Any) -> Any:
    """A command string runs through a shell; a list is argv; anything else goes on
    unchanged so the schema's type check reports it."""
    if isinstance(command, str):
        return [*SHELL, command] if command.strip() else []
    return command


def _priority(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_priority(value)
        except DomainError as error:
            raise invalid_spec(error) from None
    return value


def _gpu(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("count")
    return value


def _asked(value: Any) -> Any:
    """The native template sends `[]` for resources, labels and envs it leaves empty:
    an empty list asks for nothing, like an absent field."""
    return None if isinstance(value, list) and not value else value


def _resources(value: Any, where: str) -> dict[str, Any] | None:
    res = _object(_asked(value), where)
    if not res:
        return None
    return {"cpus": res.get("cpus"), "memory": res.get("memory"), "gpu": _gpu(res.get("gpu"))}


def _require_image(image: Any, where: str) -> Any:
    # The legacy request shapes all carry an image (the documented body lists it):
    # a shape requirement, reported like a spec error.
    if image is None or (isinstance(image, str) and not image.strip()):
        raise RestError(
            "INVALID_ARGUMENT", f"{where} is required, e.g. \"registry/image:tag\"",
            field=where, status=INVALID_SPEC_STATUS,
        )
    return image


def _input(
    top: dict[str, Any], inner: dict[str, Any], where: str, *,
    name: Any, command: Any, queue: Any, replicas: Any,
) -> dict[str, Any]:
    """The createJob input: job-level fields from `top`, container-level ones (image,
    resources, envs) from `inner`, found at `where` in the request (for messages)."""
    return {
        "name": name or "",
        "image": _require_image(inner.get("image"), f"{where}image"),
        "command": command or [],
        "resourcePoolId": top.get("resourcePoolId"),
        "queue": queue,
        "replicas": replicas,
        "resources": _resources(inner.get("resources"), f"{where}resources"),
        "envs": _asked(inner.get("envs")),
        "priority": _priority(top.get("priority")),
        "maxRetries": top.get("maxRetries"),
        "timeoutSeconds": top.get("timeoutSeconds"),
        "labels": _asked(top.get("labels")),
    }


def _flat(body: dict[str, Any]) -> dict[str, Any]:
    return _input(
        body, body, "",
        name=body.get("jobName", body.get("name")),
        command=_shell(body.get("command")),
        queue=body.get("queue", body.get("queueName")),
        replicas=body.get("replicas"),
    )


def _unified(params: dict[str, Any]) -> dict[str, Any]:
    container = _object(params.get("container"), "taskParams.container")
    command = params.get("command")
    command = _shell(command) if isinstance(command, str) and command.strip() else container.get("command")
    return _input(
        params, container, "taskParams.container.",
        name=params.get("name"),
        command=command,
        queue=params.get("queueName", params.get("queue")),
        replicas=params.get("replicas"),
    )


def _native(params: dict[str, Any]) -> dict[str, Any]:
    spec = _object(params.get("jobSpec"), "taskParams.jobSpec")
    return _input(
        params, spec, "taskParams.jobSpec.",
        name=params.get("name"),
        command=_shell(params.get("command", spec.get("command"))),
        queue=params.get("queue", params.get("queueName")),
        replicas=spec.get("replicas"),
    )


def _task_params(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = load_json(value, what="taskParams")
        except JSONBodyInvalid as error:
            raise bad_request(error.message, field="taskParams") from None
    if not isinstance(value, dict):
        raise bad_request("taskParams must be an object or a JSON string of one", field="taskParams")
    return value


def _ignored(shape: dict[str, Any]) -> list[str]:
    found = [k for k in IGNORED_FIELDS if shape.get(k)]
    for nested in ("container", "jobSpec"):
        inner = shape.get(nested)
        if isinstance(inner, dict):
            found += [f"{nested}.{k}" for k in IGNORED_FIELDS if inner.get(k)]
    return found


def create_input(body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
    """The `CreateJobInput` for any of the three create shapes."""
    if "taskParams" in body:
        params = _task_params(body["taskParams"])
        shape, translated = ("native", _native(params)) if "jobSpec" in params else ("unified", _unified(params))
    else:
        params, shape, translated = body, "flat", _flat(body)
    ignored = _ignored(params)
    if ignored:
        log.info("rest.create.ignored_fields", shape=shape, fields=ignored)
    if idempotency_key:
        translated["idempotencyKey"] = idempotency_key
    return {k: v for k, v in translated.items() if v is not None}


# -- rerun ------------------------------------------------------------------------------

RERUN_FIELDS = ("priority", "queue", "envs")


def rerun_input(
    job_id: str, body: dict[str, Any], *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """The `RerunJobInput`: the body's `priority` (a number or a word), `queue` and `envs`
    are the overrides; anything else is refused rather than silently not changed."""
    other = sorted(k for k in body if k not in RERUN_FIELDS)
    if other:
        raise bad_request(
            f"a rerun changes only {', '.join(RERUN_FIELDS)}; {', '.join(other)} cannot be "
            "changed (create a new job for that)", field=other[0],
        )
    overrides = {
        "priority": _priority(body.get("priority")),
        "queue": body.get("queue"),
        "envs": _asked(body.get("envs")),
    }
    translated: dict[str, Any] = {
        "jobId": job_id, "overrides": {k: v for k, v in overrides.items() if v is not None},
    }
    if idempotency_key:
        translated["idempotencyKey"] = idempotency_key
    return translated


# -- results ----------------------------------------------------------------------------

def legacy_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the console reads it: `status` in its words, the exact enum value as
    `jobStatus` (nothing is lost)."""
    if "status" not in job:
        return job
    return {**job, "status": answer_word(job["status"]), "jobStatus": job["status"]}


def legacy_user(viewer: dict[str, Any]) -> dict[str, Any]:
    """The console's currentUser: Ant Design Pro reads name, userid and access."""
    return {
        "name": viewer["user"],
        "userid": viewer["user"],
        "user": viewer["user"],
        "groups": viewer["groups"],
        "isAdmin": viewer["isAdmin"],
        "access": "admin" if viewer["isAdmin"] else "user",
    }
