"""Subscription root: live streams from the core."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from datetime import datetime

import strawberry

from app.core.live import batched
from app.graphql.types import Info, Job, JobEvent


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="With `jobId`: the job now, then each time its status, pods or reason "
        "change, ending after a final status. Without: every change of every job you may see."
    )
    async def job_updated(
        self, info: Info, job_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Job, None]:
        live = info.context.services.live
        actor = info.context.actor
        stream = (
            live.job_updates(actor=actor, job_id=job_id)
            if job_id is not None
            else live.all_job_updates(actor=actor)
        )
        try:
            async for job in stream:
                yield Job.of(job)
        finally:
            await stream.aclose()

    @strawberry.subscription(
        description="The job's stored events (from `since`), then new ones as they happen; "
        "ends once the job has ended."
    )
    async def job_events(
        self, info: Info, job_id: strawberry.ID, since: datetime | None = None
    ) -> AsyncGenerator[JobEvent, None]:
        stream = info.context.services.live.job_events(
            actor=info.context.actor, job_id=job_id, since=since
        )
        try:
            async for event in stream:
                yield JobEvent.of(event)
        finally:
            await stream.aclose()

    @strawberry.subscription(
        description="A pod's log, one line per message: the last `tailLines` lines, then "
        "(with `follow`) new lines until the pod ends; only lines containing `keyword`."
    )
    async def pod_logs(
        self,
        info: Info,
        job_id: strawberry.ID,
        pod_name: str,
        tail_lines: int | None = None,
        follow: bool = True,
        keyword: str | None = None,
    ) -> AsyncGenerator[str, None]:
        lines = info.context.services.jobs.follow_logs(
            actor=info.context.actor,
            job_id=job_id,
            pod_name=pod_name,
            tail_lines=tail_lines,
            keyword=keyword,
            follow=follow,
        )
        try:
            async for line in lines:
                yield line
        finally:
            await lines.aclose()  # stop following at once when the client goes away

    @strawberry.subscription(
        description="Like `podLogs`, but each message is a list of the lines written since "
        "the last one (at most 5,000): what a client following a fast-growing log should use."
    )
    async def pod_log_lines(
        self,
        info: Info,
        job_id: strawberry.ID,
        pod_name: str,
        tail_lines: int | None = None,
        follow: bool = True,
        keyword: str | None = None,
    ) -> AsyncGenerator[list[str], None]:
        lines = info.context.services.jobs.follow_logs(
            actor=info.context.actor,
            job_id=job_id,
            pod_name=pod_name,
            tail_lines=tail_lines,
            keyword=keyword,
            follow=follow,
        )
        batches = batched(lines)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()
