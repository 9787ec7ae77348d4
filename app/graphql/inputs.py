"""Input types and their translation to the domain's drafts and filters."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.domain.audit import AuditFilter
from app.domain.errors import ValidationFailed
from app.domain.listing import JobFilter
from app.domain.rerun import RerunOverrides
from app.domain.validation import JobSpecDraft
from app.graphql.types import JobStatus


@strawberry.input
class ResourcesInput:
    cpus: float | None = None
    memory: float | None = strawberry.field(default=None, description="GiB")
    gpu: int | None = None


@strawberry.input
class EnvVarInput:
    name: str
    value: str


@strawberry.input
class CreateJobInput:
    name: str
    command: list[str] = strawberry.field(description="argv; use [\"/bin/sh\", \"-c\", \"...\"] for a shell line.")
    image: str | None = None
    resource_pool_id: str | None = strawberry.field(
        default=None, description="Omitted: the first pool."
    )
    queue: str | None = strawberry.field(default=None, description="Omitted: the pool's first queue.")
    replicas: int | None = 1
    resources: ResourcesInput | None = None
    envs: list[EnvVarInput] | None = None
    priority: int | None = strawberry.field(default=0, description="Higher starts first.")
    max_retries: int | None = 0
    timeout_seconds: int | None = None
    labels: JSON | None = strawberry.field(default=None, description="String keys and values.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="The same key from the same user returns the existing job."
    )
    shared_with_groups: list[str] | None = strawberry.field(
        default=None, description="Groups whose members may read (not act on) the job."
    )

    def to_draft(self) -> JobSpecDraft:
        labels: object = self.labels or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValidationFailed("labels must be an object of string keys and values", field="labels")
        res = self.resources or ResourcesInput()
        return JobSpecDraft(
            name=self.name,
            command=list(self.command),
            image=self.image,
            resource_pool_id=self.resource_pool_id,
            queue=self.queue,
            replicas=self.replicas,
            cpus=res.cpus,
            memory_gib=res.memory,
            gpu=res.gpu,
            envs=[(e.name, e.value) for e in self.envs or []],
            priority=self.priority,
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            labels=labels,
        )


@strawberry.input(description="What to change in the rerun; anything omitted stays as it was.")
class RerunOverridesInput:
    priority: int | None = strawberry.field(default=None, description="Higher starts first.")
    queue: str | None = strawberry.field(
        default=None, description="Another queue of the same pool."
    )
    envs: list[EnvVarInput] | None = strawberry.field(
        default=None,
        description="Merged by name: each replaces the old job's variable of that name, or "
        "is added; the old job's other variables are kept (none can be removed here).",
    )

    def to_overrides(self) -> RerunOverrides:
        envs = None if self.envs is None else tuple((e.name, e.value) for e in self.envs)
        return RerunOverrides(priority=self.priority, queue=self.queue, envs=envs)


@strawberry.input
class RerunJobInput:
    job_id: strawberry.ID = strawberry.field(description="A job that has ended (any final status).")
    overrides: RerunOverridesInput | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="The same key from the same user returns the existing job."
    )

    def to_overrides(self) -> RerunOverrides:
        return self.overrides.to_overrides() if self.overrides else RerunOverrides()


@strawberry.input
class JobIdInput:
    job_id: strawberry.ID


@strawberry.input
class UpdateJobInput:
    job_id: strawberry.ID
    priority: int | None = strawberry.field(default=None, description="Higher starts first.")
    queue: str | None = strawberry.field(default=None, description="One of the pool's queues.")


@strawberry.input
class OpenWebTerminalInput:
    job_id: strawberry.ID
    pod_name: str


@strawberry.input
class ShareJobInput:
    job_id: strawberry.ID
    groups: list[str] = strawberry.field(description="Replaces the groups shared with so far.")


@strawberry.input
class AuditFilterInput:
    actor: str | None = None
    action: str | None = strawberry.field(
        default=None, description="job.create, job.rerun, job.stop, job.delete, job.share, "
        "job.update, job.hold, job.release, terminal.open, "
        "terminal.close, token.create, token.revoke, login, logout"
    )
    job_id: strawberry.ID | None = None
    outcome: str | None = strawberry.field(default=None, description="allowed or refused")

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            actor=self.actor, action=self.action, job_id=self.job_id, outcome=self.outcome
        )


@strawberry.input
class JobFilterInput:
    keyword: str | None = strawberry.field(default=None, description="Part of the name or id.")
    status: list[JobStatus] | None = strawberry.field(
        default=None, description="One status or several (any of them)."
    )
    resource_pool_id: str | None = None
    queue: str | None = None
    owner: str | None = None

    def to_filter(self) -> JobFilter:
        return JobFilter(
            keyword=self.keyword or None,
            statuses=tuple(self.status or ()),
            resource_pool_id=self.resource_pool_id or None,
            queue=self.queue or None,
            owner=self.owner or None,
        )
