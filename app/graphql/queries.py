"""Query root: thin resolvers that parse arguments, call the core and map the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.domain.listing import DEFAULT_PAGE_SIZE, JobCursor, JobFilter, PageRequest
from app.graphql.inputs import JobFilterInput
from app.graphql.types import Info, Job, JobConnection, ResourcePool


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
        return Job(job=await info.context.services.jobs.get(actor=info.context.actor, job_id=id))

    @strawberry.field(description="Where jobs can run, and their queues.")
    def resource_pools(self, info: Info) -> list[ResourcePool]:
        info.context.actor  # noqa: B018 - authentication is required here too
        return [ResourcePool.of(p) for p in info.context.services.pools]
