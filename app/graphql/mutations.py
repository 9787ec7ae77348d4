"""Mutation root: every payload carries `userErrors` for what the client can fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from app.domain.jobs import Job as DomainJob
from app.graphql.errors import UserError, user_errors
from app.graphql.inputs import (
    CreateJobInput,
    JobIdInput,
    OpenWebTerminalInput,
    RerunJobInput,
    ShareJobInput,
    UpdateJobInput,
)
from app.graphql.types import Info, Job


@strawberry.type
class JobPayload:
    """The shape of every mutation that answers a job (each has its own named type)."""

    job: Job | None
    user_errors: list[UserError]


P = TypeVar("P", bound="JobPayload")


async def job_payload(payload: type[P], call: Callable[[], Awaitable[DomainJob]]) -> P:
    """Run a use case, answering its job or the userErrors it raised."""
    job, errors = await user_errors(call)
    return payload(job=Job.of(job) if job else None, user_errors=errors)


@strawberry.type
class CreateJobPayload(JobPayload):
    pass


@strawberry.type
class RerunJobPayload(JobPayload):
    job: Job | None = strawberry.field(description="The new job; its `rerunOf` is the old one.")


@strawberry.type
class StopJobPayload(JobPayload):
    pass


@strawberry.type
class ShareJobPayload(JobPayload):
    pass


@strawberry.type
class UpdateJobPayload(JobPayload):
    pass


@strawberry.type
class HoldJobPayload(JobPayload):
    pass


@strawberry.type
class ReleaseJobPayload(JobPayload):
    pass


@strawberry.type
class DeleteJobPayload:
    deleted_job_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class OpenWebTerminalPayload:
    url: str | None = strawberry.field(
        description="ws:// or wss:// URL of the terminal socket; it carries its own credential."
    )
    expires_at: datetime | None = strawberry.field(
        description="Open the socket before this; the URL works once."
    )
    user_errors: list[UserError]


def _websocket_base(public_url: str | None) -> str:
    # Same host as the API; only the scheme changes (http -> ws, https -> wss).
    base = public_url or "http://localhost"
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base[len(http):]
    return base


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Submit a job. Omitted pool and queue: the defaults.")
    async def create_job(self, info: Info, input: CreateJobInput) -> CreateJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(
            CreateJobPayload,
            lambda: jobs.create(
                actor=actor,
                draft=input.to_draft(),
                idempotency_key=input.idempotency_key,
                shared_with=tuple(input.shared_with_groups or ()),
            ),
        )

    @strawberry.mutation(
        description="Run an ended job again: a new job from its spec with `overrides`, "
        "checked like a create (pool access, capacity, limits). Its owner or an admin may; "
        "the new job is the caller's and is shared with no one. A job that has not ended: "
        "CONFLICT."
    )
    async def rerun_job(self, info: Info, input: RerunJobInput) -> RerunJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(
            RerunJobPayload,
            lambda: jobs.rerun(
                actor=actor, job_id=input.job_id, overrides=input.to_overrides(),
                idempotency_key=input.idempotency_key,
            ),
        )

    @strawberry.mutation(
        description="Let the members of `groups` read the job (replacing earlier groups); "
        "only its owner or an admin may."
    )
    async def share_job(self, info: Info, input: ShareJobInput) -> ShareJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(
            ShareJobPayload,
            lambda: jobs.share(actor=actor, job_id=input.job_id, groups=tuple(input.groups)),
        )

    @strawberry.mutation(description="Stop a queued or running job; it ends STOPPED.")
    async def stop_job(self, info: Info, input: JobIdInput) -> StopJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(StopJobPayload, lambda: jobs.stop(actor=actor, job_id=input.job_id))

    @strawberry.mutation(
        description="A waiting (PENDING or QUEUED) job's new priority and/or queue; it starts "
        "in the new order. Its owner or an admin; CONFLICT once it has started."
    )
    async def update_job(self, info: Info, input: UpdateJobInput) -> UpdateJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(
            UpdateJobPayload,
            lambda: jobs.update(
                actor=actor, job_id=input.job_id, priority=input.priority, queue=input.queue
            ),
        )

    @strawberry.mutation(
        description="Keep a waiting job from starting (reason HELD) until releaseJob; it keeps "
        "its place. Its owner or an admin; CONFLICT once it has started."
    )
    async def hold_job(self, info: Info, input: JobIdInput) -> HoldJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(HoldJobPayload, lambda: jobs.hold(actor=actor, job_id=input.job_id))

    @strawberry.mutation(
        description="Let a held job start again, back in its place in the queue. Its owner or "
        "an admin; CONFLICT once it no longer waits."
    )
    async def release_job(self, info: Info, input: JobIdInput) -> ReleaseJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        return await job_payload(
            ReleaseJobPayload, lambda: jobs.release(actor=actor, job_id=input.job_id)
        )

    @strawberry.mutation(description="Stop the job if needed and remove it with its pods, events and logs.")
    async def delete_job(self, info: Info, input: JobIdInput) -> DeleteJobPayload:
        actor = info.context.actor
        jobs = info.context.services.jobs
        job_id, errors = await user_errors(lambda: jobs.delete(actor=actor, job_id=input.job_id))
        return DeleteJobPayload(
            deleted_job_id=strawberry.ID(job_id) if job_id else None, user_errors=errors
        )

    @strawberry.mutation(
        description="A short-lived, single-use URL for a shell in one of the job's pods."
    )
    async def open_web_terminal(self, info: Info, input: OpenWebTerminalInput) -> OpenWebTerminalPayload:
        actor = info.context.actor
        tickets = info.context.services.terminal_tickets
        ticket, errors = await user_errors(
            lambda: tickets.open(actor=actor, job_id=input.job_id, pod_name=input.pod_name)
        )
        if ticket is None:
            return OpenWebTerminalPayload(url=None, expires_at=None, user_errors=errors)
        url = f"{_websocket_base(info.context.public_url)}/webterminal/{ticket.credential}"
        return OpenWebTerminalPayload(url=url, expires_at=ticket.expires_at, user_errors=[])
