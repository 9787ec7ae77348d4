"""Per-request GraphQL context: who is asking, the services, and this request's loaders."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from app.core.answers import Reads
from app.domain.errors import DomainError, Unauthenticated
from app.domain.jobs import Job, JobEvent, Pod
from app.domain.principal import Principal
from app.domain.usage import PoolUsage
from app.services import Services

# A job's events within a time window: (job id, since, until).
EventsKey = tuple[str, datetime | None, datetime | None]


class Loaders:
    """Batching per request: a page of jobs with their pods costs one pods query, and their
    events (in one time window) one events query. Reads are made as the context's actor;
    a job the actor may not read has no pods or events."""

    def __init__(self, context: GraphQLContext, *, cache: bool = True) -> None:
        self.pods = DataLoader[str, list[Pod]](self._load_pods, cache=cache)
        self.events = DataLoader[EventsKey, list[JobEvent]](self._load_events, cache=cache)
        self.queue_positions = DataLoader[Job, int | None](
            self._load_positions, cache=cache, cache_key_fn=lambda job: job.job_id
        )
        self.pool_usage = DataLoader[str, PoolUsage](self._load_pool_usage, cache=cache)
        self._context = context

    async def _load_pool_usage(self, pool_ids: list[str]) -> list[PoolUsage]:
        """Pools listed by `resourcePools` (so visible to the actor): one query for all."""
        found = await self._context.services.usage.pools_usage(
            actor=self._context.actor, pool_ids=pool_ids
        )
        return [found[pool_id] for pool_id in pool_ids]

    async def _load_pods(self, job_ids: list[str]) -> list[list[Pod]]:
        pods = await self._context.services.jobs.pods_of(actor=self._context.actor, job_ids=job_ids)
        return [pods[job_id] for job_id in job_ids]

    async def _load_positions(self, jobs: list[Job]) -> list[int | None]:
        """Jobs already read as the actor: their positions need no further check."""
        found = await self._context.services.jobs.queue_positions(jobs=jobs)
        return [found.get(job.job_id) for job in jobs]

    async def _load_events(self, keys: list[EventsKey]) -> list[list[JobEvent] | BaseException]:
        windows: dict[tuple[datetime | None, datetime | None], list[str]] = {}
        for job_id, since, until in keys:
            windows.setdefault((since, until), []).append(job_id)
        found: dict[EventsKey, list[JobEvent] | BaseException] = {}
        for (since, until), job_ids in windows.items():
            try:
                events = await self._context.services.jobs.events_of(
                    actor=self._context.actor, job_ids=job_ids, since=since, until=until
                )
            except DomainError as error:  # e.g. a window that ends before it starts
                found.update({(job_id, since, until): error for job_id in job_ids})
            else:
                found.update({(job_id, since, until): events[job_id] for job_id in job_ids})
        return [found[key] for key in keys]


class GraphQLContext(BaseContext):
    def __init__(
        self,
        *,
        services: Services,
        principal: Principal | None,
        public_url: str | None = None,
        cache_loads: bool = True,
    ) -> None:
        super().__init__()
        self.services = services
        self.principal = principal
        # How clients reach this server (e.g. https://jobs.example.com), for URLs handed
        # out such as web-terminal links; set by whoever builds the context from a request.
        self.public_url = public_url
        self._cache_loads = cache_loads
        # What the answer is read from, for the answer cache (resolvers note it).
        self.reads = Reads()

    @cached_property
    def loaders(self) -> Loaders:
        """Made when a resolver first needs one (an answer from the cache needs none)."""
        return Loaders(self, cache=self._cache_loads)

    @property
    def actor(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
        return self.principal
