"""Live streams of jobs and events for subscriptions, from the core's broker.

Each stream subscribes first and reads the stored state second, so nothing that happens
in between is missed; duplicates that this overlap can cause are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime

from app.core.broker import ALL_JOBS_TOPIC, Broker, events_topic, job_topic
from app.core.jobs import JobService
from app.domain.jobs import Job, JobEvent
from app.domain.principal import Principal

# A follower that falls this many lines behind makes the log reader wait (backpressure)
# instead of the server buffering without bound.
LOG_BUFFER_LINES = 20_000
MAX_BATCH_LINES = 5_000


async def batched(
    lines: AsyncGenerator[str, None], *, max_lines: int = MAX_BATCH_LINES
) -> AsyncGenerator[list[str], None]:
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


async def _first_of(
    events: asyncio.Queue[JobEvent], changes: asyncio.Queue[Job]
) -> tuple[JobEvent | None, Job | None]:
    """Whichever of the two queues has something first (both, if both do). The waits are
    cancelled however this ends, the client leaving included: a dropped subscription
    leaves no task behind."""
    event_wait = asyncio.ensure_future(events.get())
    change_wait = asyncio.ensure_future(changes.get())
    try:
        await asyncio.wait({event_wait, change_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in (event_wait, change_wait):
            wait.cancel()
    # A wait cancelled after it got its item would lose it; `done()` and no cancel
    # means the item was taken.
    event = event_wait.result() if event_wait.done() and not event_wait.cancelled() else None
    change = change_wait.result() if change_wait.done() and not change_wait.cancelled() else None
    return event, change


class LiveService:
    def __init__(self, *, jobs: JobService, broker: Broker) -> None:
        self.jobs = jobs
        self.broker = broker

    async def job_updates(self, *, actor: Principal, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now, then each time it changes; ends after a final status."""
        async with self.broker.subscribe(job_topic(job_id)) as changes:
            job = await self.jobs.get(actor=actor, job_id=job_id)
            yield job
            while not job.status.is_final:
                job = await changes.get()
                yield job

    async def all_job_updates(self, *, actor: Principal) -> AsyncGenerator[Job, None]:
        """Every change of every job the actor may see, until the client leaves."""
        async with self.broker.subscribe(ALL_JOBS_TOPIC) as changes:
            while True:
                job = await changes.get()
                if actor.may_read(owner=job.owner, shared_with=job.shared_with):
                    yield job

    async def job_events(
        self, *, actor: Principal, job_id: str, since: datetime | None = None
    ) -> AsyncGenerator[JobEvent, None]:
        """Stored events (from `since`), then new ones as they happen; ends once the job
        has reached a final status and its last events are out (oldest first)."""
        async with self.broker.subscribe(events_topic(job_id)) as fresh, self.broker.subscribe(
            job_topic(job_id)
        ) as changes:
            job = await self.jobs.get(actor=actor, job_id=job_id)
            seen: set[str] = set()
            for stored in await self.jobs.events_in(actor=actor, job_id=job_id, since=since):
                seen.add(stored.key)
                yield stored
            ended = job.status.is_final
            while not ended:
                event, change = await _first_of(fresh, changes)
                if event is not None and event.key not in seen:
                    seen.add(event.key)
                    yield event
                if change is not None:
                    ended = change.status.is_final
            # The final status was stored with its events, in one transaction; whatever the
            # broker has not delivered yet is in the database now.
            for event in await self.jobs.events_in(actor=actor, job_id=job_id, since=since):
                if event.key not in seen:
                    seen.add(event.key)
                    yield event
