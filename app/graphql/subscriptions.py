"""Subscription root: live streams from the core; resolvers only subscribe and map."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from app.core.live import batched
from app.graphql.types import Info, Job, JobEvent

T = TypeVar("T")
U = TypeVar("U")


async def relay(
    stream: AsyncGenerator[T, None], convert: Callable[[T], U]
) -> AsyncGenerator[U, None]:
    """Each item converted; the core's stream is closed at once when the client leaves."""
    try:
        async for item in stream:
            yield convert(item)
    finally:
        await stream.aclose()


def _same(item: T) -> T:
    return item


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="With `jobId`: the job now, then each time its status, pods or reason "
        "change, ending after a final status. Without: every change of every job you may see."
    )
    def job_updated(
        self, info: Info, job_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Job, None]:
        live = info.context.services.live
        actor = info.context.actor
        stream = (
            live.job_updates(actor=actor, job_id=job_id)
            if job_id is not None
            else live.all_job_updates(actor=actor)
        )
        return relay(stream, Job.of)

    @strawberry.subscription(
        description="The job's stored events (from `since`), then new ones as they happen; "
        "ends once the job has ended."
    )
    def job_events(
        self, info: Info, job_id: strawberry.ID, since: datetime | None = None
    ) -> AsyncGenerator[JobEvent, None]:
        stream = info.context.services.live.job_events(
            actor=info.context.actor, job_id=job_id, since=since
        )
        return relay(stream, JobEvent.of)

    @strawberry.subscription(
        description="A pod's log, one line per message: the last `tailLines` lines, then "
        "(with `follow`) new lines until the pod ends; only lines containing `keyword`."
    )
    def pod_logs(
        self,
        info: Info,
        job_id: strawberry.ID,
        pod_name: str,
        tail_lines: int | None = None,
        follow: bool = True,
        keyword: str | None = None,
    ) -> AsyncGenerator[str, None]:
        lines = info.context.services.jobs.follow_logs(
            actor=info.context.actor, job_id=job_id, pod_name=pod_name,
            tail_lines=tail_lines, keyword=keyword, follow=follow,
        )
        return relay(lines, _same)

    @strawberry.subscription(
        description="Like `podLogs`, but each message is a list of the lines written since "
        "the last one (at most 5,000): what a client following a fast-growing log should use."
    )
    def pod_log_lines(
        self,
        info: Info,
        job_id: strawberry.ID,
        pod_name: str,
        tail_lines: int | None = None,
        follow: bool = True,
        keyword: str | None = None,
    ) -> AsyncGenerator[list[str], None]:
        lines = info.context.services.jobs.follow_logs(
            actor=info.context.actor, job_id=job_id, pod_name=pod_name,
            tail_lines=tail_lines, keyword=keyword, follow=follow,
        )
        return relay(batched(lines), _same)
