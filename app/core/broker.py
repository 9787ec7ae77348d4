"""The core's broker: changes published once, delivered to every subscriber.

`Broker` delivers within this process. `PostgresBroker` (app/core/pg_broker.py) is the
same interface backed by PostgreSQL LISTEN/NOTIFY, so that with several replicas a
change seen by one reaches the subscribers of all. Publishers and subscribers only see
`publish` and `subscribe`.

A change to a job is published *within* the transaction that writes it
(`publish_job(job, within=session)`): subscribers hear of it once it has committed, and
never of a change that rolled back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.jobs import Job, JobEvent, JobRemoved
from app.domain.usage import PoolChanged
from app.store.db import after_commit

# A subscriber that falls this far behind loses its oldest messages rather than
# making the server buffer without bound.
SUBSCRIBER_BUFFER = 1000


class Broker:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self._resync_callbacks: list[Callable[[], None]] = []
        self._listeners: dict[str, list[Callable[[Any], None]]] = defaultdict(list)

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def close(self) -> None:
        """Nothing to disconnect in-process."""

    def publish(self, topic: str, message: Any) -> None:
        self._publish_to((topic,), message)

    async def publish_job(self, job: Job, *, within: AsyncSession) -> None:
        """A job changed in `within`'s transaction: for its own subscribers and for
        those of every job, once it commits."""
        await self._stage(within, (job_topic(job.job_id), ALL_JOBS_TOPIC), job)

    async def publish_pool_change(self, pool_id: str, *, within: AsyncSession) -> None:
        """A pool's jobs changed in a way no job change announces (a deletion)."""
        await self._stage(within, (POOLS_TOPIC,), PoolChanged(pool_id))

    async def publish_event(self, event: JobEvent, *, within: AsyncSession) -> None:
        await self._stage(within, (events_topic(event.job_id), ALL_EVENTS_TOPIC), event)

    async def publish_job_removed(self, job_id: str, *, within: AsyncSession) -> None:
        """The job is deleted in `within`'s transaction (for caches of what it was)."""
        await self._stage(within, (REMOVED_JOBS_TOPIC,), JobRemoved(job_id))

    async def _stage(self, session: AsyncSession, topics: tuple[str, ...], message: Any) -> None:
        after_commit(session, partial(self._deliver_all, topics, message))

    def _publish_to(self, topics: tuple[str, ...], message: Any) -> None:
        self._deliver_all(topics, message)

    def _deliver_all(self, topics: tuple[str, ...], message: Any) -> None:
        for topic in topics:
            self.deliver(topic, message)

    def listen(self, topic: str, callback: Callable[[Any], None]) -> None:
        """Call `callback` with each message of `topic`, synchronously, as it is delivered
        (for caches that messages invalidate: nothing is queued, nothing can fall behind)."""
        self._listeners[topic].append(callback)

    def deliver(self, topic: str, message: Any) -> None:
        """Hand a message to this process's listeners and subscribers of `topic`."""
        self._tell_listeners(topic, message)
        self._tell_subscribers(topic, message)

    def _tell_subscribers(self, topic: str, message: Any) -> None:
        for queue in self._subscribers.get(topic, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def _tell_listeners(self, topic: str, message: Any) -> None:
        for callback in self._listeners.get(topic, ()):
            callback(message)

    @property
    def hearing(self) -> bool:
        """Whether every change is being heard now (in-process: always). While not, a
        cache that messages invalidate must not answer from what it holds."""
        return True

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[topic].discard(queue)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    def on_resync(self, callback: Callable[[], None]) -> None:
        """`callback` runs whenever messages may have been missed (the broker lost its
        connection, or fell behind): whoever caches what messages invalidate should
        drop it then. Job and event subscribers are re-sent the current state."""
        self._resync_callbacks.append(callback)

    def subscriber_count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def subscriber_total(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())


def job_topic(job_id: str) -> str:
    return f"job:{job_id}"


ALL_JOBS_TOPIC = "jobs"
# Every job's events, and deleted jobs: heard only by listeners (caches), never
# subscribed to.
ALL_EVENTS_TOPIC = "events"
REMOVED_JOBS_TOPIC = "jobs:removed"
TOKENS_TOPIC = "tokens"
POOLS_TOPIC = "pools"


def events_topic(job_id: str) -> str:
    return f"events:{job_id}"
