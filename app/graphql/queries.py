"""Query root: thin resolvers that parse arguments, call the core and map the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.domain.audit import AuditFilter
from app.domain.listing import DEFAULT_PAGE_SIZE, JobCursor, JobFilter, PageRequest
from app.graphql.inputs import AuditFilterInput, JobFilterInput
from app.graphql.types import (
    AuditEntry,
    AuditEntryConnection,
    Info,
    Job,
    JobConnection,
    PageInfo,
    ResourcePool,
    Viewer,
)


@strawberry.type
class Query:
    @strawberry.field(description="Jobs the caller may see, newest first.")
    async def jobs(
        self,
        info: Info,
        filter: JobFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        offset: Annotated[
            int, strawberry.argument(description="Skip this many jobs first (page-number clients).")
        ] = 0,
    ) -> JobConnection:
        job_filter = filter.to_filter() if filter else JobFilter()
        page = PageRequest(
            first=first, after=JobCursor.decode(after) if after else None, offset=offset
        )
        info.context.reads.all_jobs()
        result = await info.context.services.jobs.list(
            actor=info.context.actor, job_filter=job_filter, page=page
        )
        return JobConnection.of(
            result.jobs,
            job_filter=job_filter,
            has_next=result.has_next_page,
            has_previous=result.has_previous_page,
        )

    @strawberry.field(description="One job by its id, e.g. `j-7k2m9x4q`.")
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        job, pods = await info.context.services.jobs.get_with_pods(actor=info.context.actor, job_id=id)
        info.context.reads.job(job.job_id)
        # Read with the job in one query: `pods` below costs no second one.
        info.context.loaders.pods.prime(job.job_id, pods)
        return Job.of(job)

    @strawberry.field(description="Where you may run jobs, and their queues.")
    def resource_pools(self, info: Info) -> list[ResourcePool]:
        actor = info.context.actor
        return [
            ResourcePool.of(p)
            for p in info.context.services.pools
            if p.usable_by(groups=actor.groups, is_admin=actor.is_admin)
        ]

    @strawberry.field(description="Who you are to this server.")
    def viewer(self, info: Info) -> Viewer:
        actor = info.context.actor
        return Viewer(user=actor.user, groups=list(actor.groups), is_admin=actor.is_admin)

    @strawberry.field(description="The audit trail, newest first (administrators only).")
    async def audit_log(
        self,
        info: Info,
        filter: AuditFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> AuditEntryConnection:
        entries, has_next = await info.context.services.audit.entries(
            actor=info.context.actor,
            audit_filter=filter.to_filter() if filter else AuditFilter(),
            first=first,
            after=after,
        )
        nodes = [
            AuditEntry(
                id=strawberry.ID(str(e.id)), at=e.at, actor=e.actor, action=e.action,
                outcome=e.outcome, detail=e.detail, client_addr=e.client_addr,
                job_id=strawberry.ID(e.job_id) if e.job_id is not None else None,
            )
            for e in entries
        ]
        return AuditEntryConnection(
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=after is not None,
                start_cursor=nodes[0].id if nodes else None,
                end_cursor=nodes[-1].id if nodes else None,
            ),
        )
