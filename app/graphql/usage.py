"""Usage in the schema: `ResourcePool.usage`, the `usage` query and the `poolUpdated`
subscription. Thin: the rules are in app/core/usage.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from app.domain import usage as domain
from app.graphql.context import GraphQLContext

Info = strawberry.Info[GraphQLContext, None]

UsageGroupBy = domain.UsageGroupBy
strawberry.enum(UsageGroupBy, name="UsageGroupBy", description="What one `usage` row stands for.")

T = TypeVar("T")
U = TypeVar("U")


@strawberry.type(
    description="A pool now: its jobs that run, wait or are held, and what the running "
    "ones asked for (replicas × per-replica request). Everyone who may use the pool sees it."
)
class PoolUsage:
    pool_id: strawberry.ID
    running_jobs: int = strawberry.field(description="Started and not ended (stopping included).")
    queued_jobs: int = strawberry.field(description="PENDING or QUEUED and not held.")
    held_jobs: int = strawberry.field(description="PENDING or QUEUED and held.")
    slots_in_use: int = strawberry.field(description="Each running job takes one slot.")
    slots_total: int | None = strawberry.field(
        description="The pool's maxConcurrentJobs; null when it sets none."
    )
    gpus_in_use: int
    cpus_in_use: float = strawberry.field(description="Jobs that ask no CPUs count none.")
    memory_in_use: float = strawberry.field(description="GiB; jobs that ask no memory count none.")
    gpus_total: int | None = strawberry.field(
        description="The pool's declared capacity (`capacity.gpu`); null when it declares none."
    )
    cpus_total: float | None = strawberry.field(
        description="The pool's declared CPUs; null when not declared."
    )
    memory_total: float | None = strawberry.field(
        description="GiB, the pool's declared memory; null when not declared."
    )

    @classmethod
    def of(cls, usage: domain.PoolUsage) -> PoolUsage:
        return cls(
            pool_id=strawberry.ID(usage.pool_id),
            running_jobs=usage.running_jobs,
            queued_jobs=usage.queued_jobs,
            held_jobs=usage.held_jobs,
            slots_in_use=usage.slots_in_use,
            slots_total=usage.slots_total,
            gpus_in_use=usage.gpus_in_use,
            cpus_in_use=usage.cpus_in_use,
            memory_in_use=usage.memory_in_use,
            gpus_total=usage.gpus_total,
            cpus_total=usage.cpus_total,
            memory_total=usage.memory_total,
        )


async def resolve_pool_usage(info: Info, pool_id: str) -> PoolUsage:
    """Batched: `resourcePools { usage }` costs one query for all the pools."""
    return PoolUsage.of(await info.context.loaders.pool_usage.load(pool_id))


@strawberry.type(
    description="What jobs used inside the window, for one key. Seconds are clipped to the "
    "window: the rows of two adjacent windows add up to those of both."
)
class UsageRow:
    key: str = strawberry.field(
        description="The owner, the pool id, `pool/queue`, or the UTC day (YYYY-MM-DD)."
    )
    jobs: int = strawberry.field(description="Jobs whose life (creation to end) overlaps the window.")
    succeeded: int = strawberry.field(description="Jobs that succeeded within the window.")
    failed: int = strawberry.field(description="Jobs that failed within the window.")
    wall_seconds: float = strawberry.field(description="Running time of the jobs (start to end).")
    gpu_seconds: float = strawberry.field(
        description="Requested GPUs × running time, summed over each job's replicas."
    )
    cpu_seconds: float = strawberry.field(
        description="Requested CPUs × running time, summed over each job's replicas."
    )
    queue_seconds: float = strawberry.field(description="Time from creation to the first start.")

    @classmethod
    def of(cls, row: domain.UsageRow) -> UsageRow:
        return cls(
            key=row.key, jobs=row.jobs, succeeded=row.succeeded, failed=row.failed,
            wall_seconds=row.wall_seconds, gpu_seconds=row.gpu_seconds,
            cpu_seconds=row.cpu_seconds, queue_seconds=row.queue_seconds,
        )


@strawberry.input
class UsageFilterInput:
    since: datetime | None = strawberry.field(
        default=None, description="Omitted: 30 days before `until`. At most 366 days before it."
    )
    until: datetime | None = strawberry.field(default=None, description="Omitted: now.")
    resource_pool_id: str | None = None
    owner: str | None = strawberry.field(
        default=None, description="Administrators: anyone's; others get their own rows only."
    )

    def to_filter(self) -> domain.UsageFilter:
        return domain.UsageFilter(
            since=self.since, until=self.until,
            resource_pool_id=self.resource_pool_id or None, owner=self.owner or None,
        )


@strawberry.type
class UsageQuery:
    @strawberry.field(
        description="What jobs used over a window, one row per owner, pool, queue or UTC "
        "day, ordered by key. Your own jobs only; administrators see everyone's."
    )
    async def usage(
        self, info: Info, group_by: UsageGroupBy, filter: UsageFilterInput | None = None
    ) -> list[UsageRow]:
        rows = await info.context.services.usage.usage(
            actor=info.context.actor,
            usage_filter=filter.to_filter() if filter else domain.UsageFilter(),
            group_by=group_by,
        )
        return [UsageRow.of(row) for row in rows]


async def _relay(
    stream: AsyncGenerator[T, None], convert: Callable[[T], U]
) -> AsyncGenerator[U, None]:
    try:
        async for item in stream:
            yield convert(item)
    finally:
        await stream.aclose()


@strawberry.type
class UsageSubscription:
    @strawberry.subscription(
        description="The pool's usage now, then each time it changes (a burst of changes "
        "gives one update), until you leave."
    )
    def pool_updated(self, info: Info, pool_id: strawberry.ID) -> AsyncGenerator[PoolUsage, None]:
        usage = info.context.services.usage
        # Checked here, not when the stream starts: refused before anything is sent.
        usage.visible_pool(actor=info.context.actor, pool_id=pool_id)
        return _relay(usage.pool_updates(actor=info.context.actor, pool_id=pool_id), PoolUsage.of)
