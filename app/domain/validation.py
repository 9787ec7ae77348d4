"""Job spec validation: every rule a client can break, each with a message that says
what to fix. Pool and queue existence is checked by the core (it owns the pools)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.domain.errors import ValidationFailed
from app.domain.jobs import EnvVar, JobSpec, Resources
from app.domain.limits import SizeLimits

MAX_NAME_LENGTH = 128
MAX_COMMAND_ARGS = 4096
MAX_REPLICAS = 64
MAX_CPUS = 1024
MAX_MEMORY_GIB = 16384
MAX_GPUS = 64
MAX_RETRIES = 100
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
PRIORITY_RANGE = (-1000, 1000)
MAX_IDEMPOTENCY_KEY = 128

# Named priorities for clients that send words (the legacy console sends "normal").
PRIORITY_NAMES = {"low": -100, "normal": 0, "high": 100, "urgent": 1000}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Kubernetes label key (optional DNS prefix) and value rules.
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# Label prefixes that belong to Kubernetes (and its subdomains), the queueing systems and
# jobgraph itself: a job's own label there would be read by them (or replace jobgraph's).
RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")
RESERVED_LABEL_PREFIXES = ("kueue.x-k8s.io", "scheduling.volcano.sh", "jobgraph.io")


@dataclass(slots=True)
class JobSpecDraft:
    """What a client asked for, before validation. `None` means "not given"."""

    name: str | None
    command: list[str] | None
    image: str | None = None
    resource_pool_id: str | None = None
    queue: str | None = None
    replicas: int | None = None
    cpus: float | None = None
    memory_gib: float | None = None
    gpu: int | None = None
    envs: list[tuple[str, str]] = field(default_factory=list)
    priority: int | str | None = None
    max_retries: int | None = None
    timeout_seconds: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


def parse_priority(value: int | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in PRIORITY_NAMES:
            return PRIORITY_NAMES[word]
        try:
            value = int(word)
        except ValueError:
            names = ", ".join(PRIORITY_NAMES)
            raise ValidationFailed(
                f"priority {value!r} is neither a number nor one of {names}", field="priority"
            ) from None
    low, high = PRIORITY_RANGE
    if not low <= value <= high:
        raise ValidationFailed(f"priority must be between {low} and {high}", field="priority")
    return value


def _bounded_number(value: float | None, *, name: str, high: float, allow_zero: bool) -> None:
    if value is None:
        return
    # `value != value` catches NaN, which compares false with everything else.
    if value != value or value < 0 or (value == 0 and not allow_zero) or value > high:
        lower = "0 or more" if allow_zero else "more than 0"
        raise ValidationFailed(f"{name} must be {lower} and at most {high}", field=name)


def _size(text: str | None) -> int:
    return len(text.encode("utf-8", errors="surrogatepass")) if text else 0


def check_sizes(draft: JobSpecDraft, limits: SizeLimits) -> None:
    """Counts and bytes first, before any rule looks at the values: a spec of 100,000
    environment variables or a 10 MB argument is refused at once."""
    if len(draft.envs) > limits.job_envs:
        raise ValidationFailed(
            f"{len(draft.envs)} environment variables; at most {limits.job_envs} are allowed",
            field="envs",
        )
    if len(draft.labels or {}) > limits.job_labels:
        raise ValidationFailed(
            f"{len(draft.labels)} labels; at most {limits.job_labels} are allowed", field="labels"
        )
    command = draft.command or []
    if len(command) > MAX_COMMAND_ARGS:
        raise ValidationFailed(f"command has more than {MAX_COMMAND_ARGS} arguments", field="command")
    total = _size(draft.name) + _size(draft.image)
    for index, arg in enumerate(command):
        size = _size(arg)
        if size > limits.command_arg_bytes:
            raise ValidationFailed(
                f"command argument {index} is {size} bytes; at most {limits.command_arg_bytes} "
                "are allowed (pass large data as a file in the working directory)",
                field="command",
            )
        total += size
    for env_name, env_value in draft.envs:
        size = _size(env_name) + _size(env_value)
        if size > limits.env_bytes:
            raise ValidationFailed(
                f"environment variable {env_name[:64]!r} is {size} bytes; at most "
                f"{limits.env_bytes} are allowed",
                field="envs",
            )
        total += size
    for key, value in (draft.labels or {}).items():
        total += _size(key) + _size(value if isinstance(value, str) else None)
    if total > limits.job_spec_bytes:
        raise ValidationFailed(
            f"the job spec is {total} bytes (name, image, command, environment, labels); "
            f"at most {limits.job_spec_bytes} are allowed",
        )


def validate_spec(
    draft: JobSpecDraft, *, resource_pool_id: str, queue: str, limits: SizeLimits = SizeLimits()
) -> JobSpec:
    """Check every field; the pool and queue were already resolved by the caller."""
    check_sizes(draft, limits)
    name = (draft.name or "").strip()
    if not name:
        raise ValidationFailed("name must not be empty", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            field="name",
        )
    if any(ord(c) < 32 for c in name):
        raise ValidationFailed("name must not contain control characters", field="name")

    command = draft.command or []
    if not command or not any(arg.strip() for arg in command):
        raise ValidationFailed(
            "command must be a non-empty list of strings, e.g. [\"python\", \"train.py\"]",
            field="command",
        )
    if any("\x00" in arg for arg in command):
        raise ValidationFailed("command arguments must not contain NUL bytes", field="command")

    image = draft.image.strip() if draft.image else None
    if image and (len(image) > 512 or any(c.isspace() for c in image)):
        raise ValidationFailed("image must be an image reference without spaces", field="image")

    replicas = 1 if draft.replicas is None else draft.replicas
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValidationFailed(f"replicas must be between 1 and {MAX_REPLICAS}", field="replicas")

    _bounded_number(draft.cpus, name="resources.cpus", high=MAX_CPUS, allow_zero=False)
    _bounded_number(
        draft.memory_gib, name="resources.memory", high=MAX_MEMORY_GIB, allow_zero=False
    )
    _bounded_number(draft.gpu, name="resources.gpu", high=MAX_GPUS, allow_zero=True)

    seen: set[str] = set()
    envs: list[EnvVar] = []
    for env_name, env_value in draft.envs:
        if not _ENV_NAME.match(env_name or ""):
            raise ValidationFailed(
                f"environment variable name {env_name!r} is not valid: use letters, digits, "
                "'_', '-' or '.', not starting with a digit",
                field="envs",
            )
        if env_name in seen:
            raise ValidationFailed(f"environment variable {env_name!r} is given twice", field="envs")
        if "\x00" in env_value:
            raise ValidationFailed(f"environment variable {env_name!r} contains a NUL byte", field="envs")
        seen.add(env_name)
        envs.append(EnvVar(env_name, env_value))

    max_retries = draft.max_retries or 0
    if not 0 <= max_retries <= MAX_RETRIES:
        raise ValidationFailed(f"maxRetries must be between 0 and {MAX_RETRIES}", field="maxRetries")

    timeout = draft.timeout_seconds
    if timeout is not None and not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
        raise ValidationFailed(
            f"timeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS} (30 days)",
            field="timeoutSeconds",
        )

    labels = draft.labels or {}
    for key, value in labels.items():
        _check_label(key, value)

    return JobSpec(
        name=name,
        command=tuple(command),
        image=image,
        resource_pool_id=resource_pool_id,
        queue=queue,
        replicas=replicas,
        resources=Resources(cpus=draft.cpus, memory_gib=draft.memory_gib, gpu=draft.gpu or 0),
        envs=tuple(envs),
        priority=parse_priority(draft.priority),
        max_retries=max_retries,
        timeout_seconds=timeout,
        labels=dict(labels),
    )


def _check_label(key: str, value: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (prefix and not _LABEL_PREFIX.match(prefix)):
        raise ValidationFailed(
            f"label key {key!r} is not valid: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit, with an optional DNS prefix and '/'",
            field="labels",
        )
    if prefix and (
        prefix in RESERVED_LABEL_PREFIXES
        or any(prefix == d or prefix.endswith("." + d) for d in RESERVED_LABEL_DOMAINS)
    ):
        raise ValidationFailed(
            f"label key {key!r} uses the reserved prefix {prefix + '/'!r}: prefixes of "
            "kubernetes.io, k8s.io, kueue.x-k8s.io, scheduling.volcano.sh and jobgraph.io "
            "belong to the cluster and jobgraph; use a prefix of your own",
            field="labels",
        )
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise ValidationFailed(
            f"label {key!r} has an invalid value {value!r}: at most 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit",
            field="labels",
        )


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(
            f"idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters", field="idempotencyKey"
        )
    return key


_GROUP = re.compile(r"^[^\x00-\x1f,]{1,255}$")
MAX_SHARED_GROUPS = 32


def check_groups(groups: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(g.strip() for g in groups))
    if len(cleaned) > MAX_SHARED_GROUPS:
        raise ValidationFailed(f"at most {MAX_SHARED_GROUPS} groups", field="groups")
    for group in cleaned:
        if not _GROUP.match(group):
            raise ValidationFailed(
                f"group name {group!r} is not valid: 1-255 characters, no commas or control characters",
                field="groups",
            )
    return cleaned
