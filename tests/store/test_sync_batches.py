"""The sync task applies runtime updates that queue up in batches, one transaction each,
without changing what anyone sees: every update applied in order, every change published,
and one bad update does not take the others of its batch with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

from structlog.testing import capture_logs

from app.core.broker import Broker, job_topic
from app.core.sync import RuntimeSync, ready_batches
from app.domain.jobs import JobStatus, Pod, PodPhase
from app.runtime.base import JobUpdate
from app.store.jobs import JobRepository
from tests.store.test_repositories import add, make_job


async def stream(queue: asyncio.Queue[int]) -> AsyncIterator[int]:
    while True:
        yield await queue.get()


async def test_what_is_waiting_comes_in_one_batch_in_order_and_nothing_waits_to_fill_one():
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(5):
        queue.put_nowait(item)
    batches = ready_batches(stream(queue), limit=3)
    assert await anext(batches) == [0, 1, 2]
    assert await anext(batches) == [3, 4]
    later = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.01)
    assert not later.done()  # nothing waiting: no batch
    queue.put_nowait(5)
    assert await asyncio.wait_for(later, 5) == [5]  # one alone, as soon as it is there
    await batches.aclose()


class QueuedRuntime:
    def __init__(self) -> None:
        self.pool = SimpleNamespace(id="local")
        self.updates: asyncio.Queue[JobUpdate] = asyncio.Queue()

    async def watch(self) -> AsyncIterator[JobUpdate]:
        while True:
            yield await self.updates.get()


def lifecycle(job_id: str) -> list[JobUpdate]:
    pod = Pod(job_id=job_id, name=f"{job_id}-0", replica_index=0, phase=PodPhase.SUCCEEDED)
    return [
        JobUpdate(job_id=job_id, status=JobStatus.QUEUED),
        JobUpdate(job_id=job_id, status=JobStatus.RUNNING),
        JobUpdate(job_id=job_id, status=JobStatus.SUCCEEDED, exit_code=0, pods=(pod,)),
    ]


async def test_queued_updates_are_applied_in_few_transactions_and_each_change_is_published(db):
    ids = [f"j-batch{i}" for i in range(20)]
    await add(db, *(make_job(job_id) for job_id in ids))
    commits = 0
    transaction = db.transaction

    def counting():
        nonlocal commits
        commits += 1
        return transaction()

    db.transaction = counting
    runtime = QueuedRuntime()
    for job_id in ids:
        for update in lifecycle(job_id):
            runtime.updates.put_nowait(update)
    broker = Broker()
    sync = RuntimeSync(db=db, broker=broker)
    try:
        async with broker.subscribe(job_topic(ids[-1])) as changes:
            sync.start(runtime)  # type: ignore[arg-type]
            async with asyncio.timeout(30):
                seen = [(await changes.get()).status for _ in range(3)]
    finally:
        await sync.close()
        del db.transaction
    assert seen == [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert commits < len(ids) * 3 / 10  # 60 updates, batches of up to 100
    async with db.reader() as session:
        jobs = [await JobRepository(session).get(job_id) for job_id in ids]
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    assert {job.exit_code for job in jobs} == {0}


async def test_a_bad_update_in_a_batch_leaves_the_others_applied(db):
    await add(db, make_job("j-good1"), make_job("j-bad"), make_job("j-good2"))
    # A pod phase that is not a PodPhase: applying it fails (not a database outage).
    broken = Pod(job_id="j-bad", name="j-bad-0", replica_index=0, phase="Exploded")  # type: ignore[arg-type]
    runtime = QueuedRuntime()
    for update in (
        JobUpdate(job_id="j-good1", status=JobStatus.QUEUED),
        JobUpdate(job_id="j-bad", status=JobStatus.RUNNING, pods=(broken,)),
        JobUpdate(job_id="j-good2", status=JobStatus.QUEUED),
    ):
        runtime.updates.put_nowait(update)
    broker = Broker()
    sync = RuntimeSync(db=db, broker=broker)
    with capture_logs() as logs:
        async with broker.subscribe(job_topic("j-good2")) as changes:
            sync.start(runtime)  # type: ignore[arg-type]
            async with asyncio.timeout(30):
                assert (await changes.get()).status is JobStatus.QUEUED
        await sync.close()
    async with db.reader() as session:
        statuses = {job_id: (await JobRepository(session).get(job_id)).status
                    for job_id in ("j-good1", "j-bad", "j-good2")}
    assert statuses == {"j-good1": JobStatus.QUEUED, "j-bad": JobStatus.PENDING,
                        "j-good2": JobStatus.QUEUED}
    assert [e["job_id"] for e in logs if e["event"] == "sync.apply_failed"] == ["j-bad"]
