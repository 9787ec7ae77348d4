"""Live streams of jobs and events for subscriptions, from the core's broker.

Each stream subscribes first and reads the stored state second, so nothing that happens
in between is missed; duplicates that this overlap can cause are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

from app.core.broker import ALL_JOBS_TOPIC, Broker, events_topic, job_topic
from app.core.jobs import JobService
from app.domain.jobs import Job, JobEvent
from app.domain.principal import Principal

# A follower that falls this many lines behind makes the log reader wait (backpressure)
# instead of the server buffering without bound.
LOG_BUFFER_LINES = 20_000
MAX_BATCH_LINES = 5_000


async def batched(lines: AsyncIterator[str], *, max_lines: int = MAX_BATCH_LINES) -> AsyncIterator[list[str]]:
    """The lines as lists: each list holds every line already read (up to `max_lines`), so
    a fast-growing log goes out in few messages and a slow one line by line."""
    buffer: asyncio.Queue[str | None] = asyncio.Queue(maxsize=LOG_BUFFER_LINES)
    failure: list[BaseException] = []

    async def read() -> None:
        try:
            async for line in lines:
                await buffer.put(line)
        except Exception as error:  # handed to the consumer below
            failure.append(error)
        finally:
            await buffer.put(None)

    reader = asyncio.create_task(read())
    try:
        while True:
            first = await buffer.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < max_lines and not buffer.empty():
                line = buffer.get_nowait()
                if line is None:
                    yield batch
                    batch = []
                    break
                batch.append(line)
            if not batch:
                break
            yield batch
        if failure:
            raise failure[0]
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await lines.aclose()


class LiveService:
    def __init__(self, *, jobs: JobService, broker: Broker) -> None:
        self.jobs = jobs
        self.broker = broker

    async def job_updates(self, *, actor: Principal, job_id: str) -> AsyncIterator[Job]:
        """The job now, then each time it changes; ends after a final status."""
        async with self.broker.subscribe(job_topic(job_id)) as changes:
            job = await self.jobs.get(actor=actor, job_id=job_id)
            yield job
            while not job.status.is_final:
                job = await changes.get()
                yield job

    async def all_job_updates(self, *, actor: Principal) -> AsyncIterator[Job]:
        """Every change of every job the actor may see, until the client leaves."""
        async with self.broker.subscribe(ALL_JOBS_TOPIC) as changes:
            while True:
                job = await changes.get()
                if actor.may_read(owner=job.owner, shared_with=job.shared_with):
                    yield job

    async def job_events(
        self, *, actor: Principal, job_id: str, since: datetime | None = None
    ) -> AsyncIterator[JobEvent]:
        """Stored events (from `since`), then new ones as they happen; ends once the job
        has reached a final status and its last events are out (oldest first)."""
        async with self.broker.subscribe(events_topic(job_id)) as fresh, self.broker.subscribe(
            job_topic(job_id)
        ) as changes:
            job = await self.jobs.get(actor=actor, job_id=job_id)
            seen: set[str] = set()
            for event in await self.jobs.events_in(job, since=since):
                seen.add(event.key)
                yield event
            ended = job.status.is_final
            while not ended:
                event_wait = asyncio.ensure_future(fresh.get())
                change_wait = asyncio.ensure_future(changes.get())
                done, pending = await asyncio.wait(
                    {event_wait, change_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if event_wait in done and event_wait.result().key not in seen:
                    seen.add(event_wait.result().key)
                    yield event_wait.result()
                if change_wait in done:
                    ended = change_wait.result().status.is_final
            # The final status was stored with its events, in one transaction; whatever the
            # broker has not delivered yet is in the database now.
            for event in await self.jobs.events_in(job, since=since):
                if event.key not in seen:
                    seen.add(event.key)
                    yield event
