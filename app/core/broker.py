"""The core's broker: changes published once, delivered to every subscriber.

`Broker` delivers within this process. `PostgresBroker` (app/core/pg_broker.py) is the
same interface backed by PostgreSQL LISTEN/NOTIFY, so that with several replicas a
change seen by one reaches the subscribers of all. Publishers and subscribers only see
`publish` and `subscribe`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.domain.jobs import Job, JobEvent

# A subscriber that falls this far behind loses its oldest messages rather than
# making the server buffer without bound.
SUBSCRIBER_BUFFER = 1000


class Broker:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def close(self) -> None:
        """Nothing to disconnect in-process."""

    def publish(self, topic: str, message: Any) -> None:
        self._publish_to((topic,), message)

    def publish_job(self, job: Job) -> None:
        """A job changed: for its own subscribers and for those of every job."""
        self._publish_to((job_topic(job.job_id), ALL_JOBS_TOPIC), job)

    def publish_event(self, event: JobEvent) -> None:
        self._publish_to((events_topic(event.job_id),), event)

    def _publish_to(self, topics: tuple[str, ...], message: Any) -> None:
        for topic in topics:
            self.deliver(topic, message)

    def deliver(self, topic: str, message: Any) -> None:
        """Hand a message to this process's subscribers of `topic`."""
        for queue in self._subscribers.get(topic, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

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

    def subscriber_count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def subscriber_total(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())


def job_topic(job_id: str) -> str:
    return f"job:{job_id}"


ALL_JOBS_TOPIC = "jobs"


def events_topic(job_id: str) -> str:
    return f"events:{job_id}"
