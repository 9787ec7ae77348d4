"""Where waiting jobs stand: `queuePosition`, 1-based among the waiting (not held) jobs of
a pool and queue, in the order they will start.

A runtime that knows its own queue (Kueue's visibility API) answers for its pools; for
the others (local pools) the core computes it, exactly, from the database, by the
domain's start order: the order the local slot queue starts jobs in."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from app.core.runtimes import RuntimeRegistry
from app.domain.errors import DomainError
from app.domain.jobs import WAITING_STATUSES, Job
from app.domain.queueing import positions
from app.store.db import Database
from app.store.waiting import WaitingRepository

log = structlog.get_logger(__name__)


async def queue_positions(
    *, db: Database, runtimes: RuntimeRegistry, jobs: Sequence[Job]
) -> dict[str, int]:
    """Positions of those of `jobs` that wait and have one; at most one query to the
    database and one call per runtime, however many jobs (a DataLoader's batch)."""
    by_pool: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status in WAITING_STATUSES and not job.held:
            by_pool.setdefault(job.resource_pool_id, []).append(job)
    found: dict[str, int] = {}
    computed_here: list[str] = []
    for pool_id, waiting in by_pool.items():
        try:
            own = await runtimes.for_pool(pool_id).queue_positions(waiting)
        except DomainError as error:  # the cluster is away: the position is unknown
            log.warning("positions.unavailable", pool=pool_id, error=error.message)
            continue
        if own is None:
            computed_here += [job.job_id for job in waiting]
        else:
            found.update({job.job_id: own[job.job_id] for job in waiting if job.job_id in own})
    if computed_here:
        async with db.reader() as session:
            queues = await WaitingRepository(session).entries(computed_here)
        asked = set(computed_here)
        for entries in queues.values():
            found.update({k: v for k, v in positions(entries).items() if k in asked})
    return found
