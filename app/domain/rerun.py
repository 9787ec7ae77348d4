"""Running a job again: the old job's spec as a new draft, with the caller's changes.

The draft then goes through the same path as any create (validation, pool and queue,
pool access, capacity, limits): what was valid then is checked again now."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import ValidationFailed
from app.domain.jobs import JobSpec
from app.domain.limits import clip
from app.domain.validation import JobSpecDraft

# Env names an audit entry lists (a rerun may change up to the job's limit of them).
AUDITED_NAMES = 8


@dataclass(frozen=True, slots=True)
class RerunOverrides:
    """What to change; None (or an empty queue) keeps the old job's value."""

    priority: int | str | None = None
    queue: str | None = None
    # Merged by name: each replaces the old job's variable of that name, or is added.
    envs: tuple[tuple[str, str], ...] | None = None


def merged_envs(
    old: list[tuple[str, str]], changes: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    """The old variables in their order, those named in `changes` with the new value,
    then the new names in the order given."""
    names = [name for name, _ in changes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValidationFailed(
            f"environment variable {twice[0]!r} is given twice in the overrides", field="envs"
        )
    new = dict(changes)
    merged = [(name, new.pop(name, value)) for name, value in old]
    return merged + list(new.items())


def rerun_draft(spec: JobSpec, overrides: RerunOverrides) -> JobSpecDraft:
    """The draft of a new job like the one of `spec`, with the overrides applied."""
    envs = [(e.name, e.value) for e in spec.envs]
    return JobSpecDraft(
        name=spec.name,
        command=list(spec.command),
        image=spec.image,
        resource_pool_id=spec.resource_pool_id,
        queue=overrides.queue or spec.queue,
        replicas=spec.replicas,
        cpus=spec.resources.cpus,
        memory_gib=spec.resources.memory_gib,
        gpu=spec.resources.gpu,
        envs=envs if overrides.envs is None else merged_envs(envs, overrides.envs),
        priority=spec.priority if overrides.priority is None else overrides.priority,
        max_retries=spec.max_retries,
        timeout_seconds=spec.timeout_seconds,
        labels=dict(spec.labels),
    )


def describe(old_job_id: str, overrides: RerunOverrides) -> str:
    """The audit trail's detail of a rerun: of which job, and what was changed."""
    changed = []
    if overrides.priority is not None:
        changed.append(f"priority {overrides.priority}")
    if overrides.queue:
        changed.append(f"queue {overrides.queue}")
    if overrides.envs:
        names = [name for name, _ in overrides.envs]
        more = f" and {len(names) - AUDITED_NAMES} more" if len(names) > AUDITED_NAMES else ""
        changed.append("envs " + ", ".join(names[:AUDITED_NAMES]) + more)
    return clip(f"rerun of {old_job_id}" + (f" ({'; '.join(changed)})" if changed else ""))
