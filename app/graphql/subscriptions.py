"""Subscription root: live streams from the core."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.graphql.types import Info


@strawberry.type
class Subscription:
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
