"""Per-request GraphQL context: who is asking, the services, and this request's loaders."""

from __future__ import annotations

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from app.domain.errors import Unauthenticated
from app.domain.jobs import JobEvent, Pod
from app.domain.principal import Principal
from app.services import Services


class Loaders:
    """Batching per request: a page of jobs with their pods costs one pods query."""

    def __init__(self, services: Services, *, cache: bool = True) -> None:
        self.pods = DataLoader[str, list[Pod]](self._load_pods, cache=cache)
        self.events = DataLoader[str, list[JobEvent]](self._load_events, cache=cache)
        self._services = services

    async def _load_pods(self, job_ids: list[str]) -> list[list[Pod]]:
        pods = await self._services.jobs.pods_of(job_ids)
        return [pods[job_id] for job_id in job_ids]

    async def _load_events(self, job_ids: list[str]) -> list[list[JobEvent]]:
        events = await self._services.jobs.events_of(job_ids)
        return [events[job_id] for job_id in job_ids]


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
        self.loaders = Loaders(services, cache=cache_loads)

    @property
    def actor(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
        return self.principal
