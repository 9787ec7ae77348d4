"""Usage: pools as people look at them (now, and live), and what jobs used over time.

Who sees what: a pool's usage (counts and totals of everyone's jobs in it) is shown to
everyone who may see the pool, i.e. submit to it: it is an aggregate, names no job or
user, and is what a user needs to decide where to submit. Usage accounting names owners:
a user gets their own rows only (asking for someone else's gives none), an admin
everyone's.

Live pool usage (`pool_updates`) costs one aggregation per pool per burst of changes in
each server process, whatever the number of subscribers: every change of a job (heard on
the broker, so from every replica on PostgreSQL) marks its pool stale; one refresh task
per pool reads it again and hands the result to all the pool's subscribers. Changes that
come while a refresh runs are folded into the next one, and an unchanged result wakes
nobody.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from app.core.broker import ALL_JOBS_TOPIC, POOLS_TOPIC, Broker
from app.core.pools import PoolCatalog
from app.core.supervision import supervised
from app.domain.errors import NotFound, ValidationFailed
from app.domain.jobs import Job, utcnow
from app.domain.pools import ResourcePool
from app.domain.principal import Principal
from app.domain.usage import (
    PoolChanged,
    PoolUsage,
    UsageFilter,
    UsageGroupBy,
    UsageRow,
    UsageWindow,
)
from app.store.db import Database
from app.store.usage import UsageRepository

log = structlog.get_logger(__name__)


def pool_topic(pool_id: str) -> str:
    return f"pool:{pool_id}"


def _pool_not_found(pool_id: str) -> NotFound:
    return NotFound(f"resource pool {pool_id!r} not found", field="poolId")


class PoolWatch:
    """Keeps the usage of pools with subscribers in this process current (see above)."""

    def __init__(self, *, db: Database, broker: Broker, pools: PoolCatalog) -> None:
        self.db = db
        self.broker = broker
        self.pools = pools
        self.refreshes = 0  # aggregations run (what coalescing saves is visible in tests)
        self._latest: dict[str, PoolUsage] = {}  # current as of the last change heard
        self._sent: dict[str, PoolUsage] = {}  # last handed to subscribers
        self._version: defaultdict[str, int] = defaultdict(int)  # changes heard
        self._dirty: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        broker.listen(ALL_JOBS_TOPIC, self._job_changed)
        broker.listen(POOLS_TOPIC, self._pool_changed)
        broker.on_resync(self._all_changed)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def latest(self, pool_id: str) -> PoolUsage | None:
        return self._latest.get(pool_id)

    def request(self, pool_id: str) -> None:
        """Read the pool again and hand the result to its subscribers even if unchanged
        (a new subscriber is waiting for it)."""
        self._sent.pop(pool_id, None)
        self._schedule(pool_id)

    def forget_if_unwatched(self, pool_id: str) -> None:
        if self.broker.subscriber_count(pool_topic(pool_id)) == 0:
            self._sent.pop(pool_id, None)

    def _job_changed(self, job: Job) -> None:
        self._changed(job.resource_pool_id)

    def _pool_changed(self, change: PoolChanged) -> None:
        self._changed(change.pool_id)

    def _all_changed(self) -> None:
        # Messages may have been missed: nothing known is current any more.
        for pool in self.pools:
            self._changed(pool.id)

    def _changed(self, pool_id: str) -> None:
        self._version[pool_id] += 1
        self._latest.pop(pool_id, None)
        if self.broker.subscriber_count(pool_topic(pool_id)):
            self._schedule(pool_id)
        else:
            self._sent.pop(pool_id, None)

    def _schedule(self, pool_id: str) -> None:
        self._dirty.add(pool_id)
        if pool_id not in self._tasks:
            self._tasks[pool_id] = supervised(f"pool-usage:{pool_id}", lambda: self._refresh(pool_id))

    async def _refresh(self, pool_id: str) -> None:
        """Until no change came during the last read. A read that fails (the database
        is away) leaves the pool stale; the task is restarted with backoff."""
        while pool_id in self._dirty:
            self._dirty.discard(pool_id)
            version = self._version[pool_id]
            try:
                usage = await self.read(pool_id)
            except BaseException:
                self._dirty.add(pool_id)
                raise
            if self._version[pool_id] == version:
                self._latest[pool_id] = usage
            if usage != self._sent.get(pool_id):
                self._sent[pool_id] = usage
                self.broker.deliver(pool_topic(pool_id), usage)
        # No await since the last check: a change from now on starts a new task.
        self._tasks.pop(pool_id, None)

    async def read(self, pool_id: str) -> PoolUsage:
        pool = self.pools.get(pool_id)
        if pool is None:  # a job of a pool no longer configured
            return PoolUsage(pool_id=pool_id)
        self.refreshes += 1
        return (await read_pools(self.db, [pool]))[pool.id]


async def read_pools(db: Database, pools: Sequence[ResourcePool]) -> dict[str, PoolUsage]:
    """The pools' usage now, in one aggregation, with what each declares it has."""
    async with db.reader() as session:
        found = await UsageRepository(session).pools_now(
            [(pool.id, pool.max_concurrent_jobs) for pool in pools]
        )
    return {pool.id: _with_capacity(found[pool.id], pool) for pool in pools}


def _with_capacity(usage: PoolUsage, pool: ResourcePool) -> PoolUsage:
    total = pool.capacity
    if total is None:
        return usage
    return replace(usage, gpus_total=total.gpu, cpus_total=total.cpus, memory_total=total.memory_gib)


class UsageService:
    def __init__(self, *, db: Database, broker: Broker, pools: PoolCatalog) -> None:
        self.db = db
        self.pools = pools
        self.broker = broker
        self.watch = PoolWatch(db=db, broker=broker, pools=pools)

    async def close(self) -> None:
        await self.watch.close()

    def visible_pool(self, *, actor: Principal, pool_id: str) -> ResourcePool:
        """A pool the actor may see (submit to); any other is "not found"."""
        pool = self.pools.get(pool_id)
        if pool is None or not pool.usable_by(groups=actor.groups, is_admin=actor.is_admin):
            raise _pool_not_found(pool_id)
        return pool

    async def pools_usage(
        self, *, actor: Principal, pool_ids: Sequence[str]
    ) -> dict[str, PoolUsage]:
        """Several pools' usage: those kept current for subscribers as they are, the others
        read in one aggregation."""
        pools = [self.visible_pool(actor=actor, pool_id=pool_id) for pool_id in pool_ids]
        found = {p.id: usage for p in pools if (usage := self.watch.latest(p.id)) is not None}
        missing = [p for p in pools if p.id not in found]
        if missing:
            found.update(await read_pools(self.db, missing))
        return found

    async def pool_updates(self, *, actor: Principal, pool_id: str) -> AsyncGenerator[PoolUsage, None]:
        """The pool's usage now, then each time it changes, until the client leaves."""
        pool = self.visible_pool(actor=actor, pool_id=pool_id)
        try:
            async with self.broker.subscribe(pool_topic(pool.id)) as changes:
                current = self.watch.latest(pool.id)
                if current is None:
                    self.watch.request(pool.id)
                    current = await changes.get()
                yield current
                while True:
                    usage = await changes.get()
                    if usage != current:
                        current = usage
                        yield usage
        finally:
            self.watch.forget_if_unwatched(pool.id)

    async def usage(
        self, *, actor: Principal, usage_filter: UsageFilter, group_by: UsageGroupBy,
        now: datetime | None = None,
    ) -> list[UsageRow]:
        """Rows of what jobs used in the window; a user's own jobs only, an admin's all."""
        now = now or utcnow()
        window = UsageWindow.of(since=usage_filter.since, until=usage_filter.until, now=now)
        if usage_filter.resource_pool_id is not None and self.pools.get(usage_filter.resource_pool_id) is None:
            known = ", ".join(p.id for p in self.pools)
            raise ValidationFailed(
                f"unknown resource pool {usage_filter.resource_pool_id!r}; known pools: {known}",
                field="resourcePoolId",
            )
        owner = usage_filter.owner
        if not actor.is_admin:
            if owner is not None and owner != actor.user:
                return []  # someone else's usage: none of it is the caller's
            owner = actor.user
        async with self.db.reader() as session:
            return await UsageRepository(session).rows(
                window=window, group_by=group_by, now=now,
                pool_id=usage_filter.resource_pool_id, owner=owner,
            )
