"""The LISTEN/NOTIFY broker heals: cut away from PostgreSQL (through a TCP proxy the test
controls; the machine's PostgreSQL is never touched), it reconnects, and its subscribers
get what changed while it was away, a final status included."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import pytest

from app.core.broker import ALL_JOBS_TOPIC, job_topic
from app.core.pg_broker import PostgresBroker
from app.domain.jobs import JobEvent, JobStatus, utcnow
from app.store.db import Database
from app.store.events import EventRepository
from app.store.jobs import JobRepository
from tests.conftest import PG_BASE_URL
from tests.store.test_repositories import add, make_job
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_BASE_URL, reason="LISTEN/NOTIFY needs PostgreSQL")
WAIT = 60.0


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


@pytest.fixture
async def proxy():
    target = urlsplit(PG_BASE_URL)
    proxy = TcpProxy(target.hostname, target.port or 5432).start()
    yield proxy
    proxy.close()


async def change(db: Database, broker: PostgresBroker, job, *events: JobEvent) -> None:
    """Write the job's state and events, with their notifications, in one transaction."""
    async with db.transaction() as session:
        await JobRepository(session).save_state(job)
        for event in await EventRepository(session).add_new(events):
            await broker.publish_event(event, within=session)
        await broker.publish_job(job, within=session)


async def next_status(queue: asyncio.Queue, job_id: str, status: JobStatus):
    async with asyncio.timeout(WAIT):
        while True:
            job = await queue.get()
            if job.job_id == job_id and job.status is status:
                return job


async def test_a_replica_cut_from_the_database_hears_what_changed_meanwhile(db, proxy):
    job = make_job("j-cut1", status=JobStatus.RUNNING)
    await add(db, job)
    publisher = PostgresBroker(db)  # another replica, which keeps its database
    cut_db = Database(through(proxy, db.url))
    cut = PostgresBroker(cut_db)
    await publisher.start()
    await cut.start()
    try:
        async with cut.subscribe(job_topic("j-cut1")) as old, cut.subscribe(ALL_JOBS_TOPIC) as every:
            await change(db, publisher, replace(job, status=JobStatus.RUNNING, reason="warming up"))
            assert (await next_status(old, "j-cut1", JobStatus.RUNNING)).reason == "warming up"

            proxy.cut()  # the cut replica's connection to PostgreSQL is gone
            done = replace(job, status=JobStatus.SUCCEEDED, exit_code=0, finished_at=utcnow())
            await change(db, publisher, done, JobEvent(job_id="j-cut1", reason="Completed", message="ok"))
            proxy.restore()

            # The NOTIFY went out while the replica was not listening: it comes back,
            # re-reads, and its old subscribers get the final status.
            assert (await next_status(old, "j-cut1", JobStatus.SUCCEEDED)).exit_code == 0
            await next_status(every, "j-cut1", JobStatus.SUCCEEDED)
            assert cut.reconnects >= 1

        # A new subscriber after the outage gets live changes as before.
        second = make_job("j-cut2", status=JobStatus.RUNNING)
        await add(db, second)
        async with cut.subscribe(job_topic("j-cut2")) as new:
            await change(db, publisher, replace(second, status=JobStatus.FAILED, exit_code=3))
            assert (await next_status(new, "j-cut2", JobStatus.FAILED)).exit_code == 3
    finally:
        await cut.close()
        await publisher.close()
        await cut_db.dispose()


async def test_notify_is_sent_only_when_the_change_commits(db):
    job = make_job("j-tx1", status=JobStatus.RUNNING)
    await add(db, job)
    broker = PostgresBroker(db)
    await broker.start()
    try:
        async with broker.subscribe(job_topic("j-tx1")) as changes:
            with pytest.raises(RuntimeError):
                async with db.transaction() as session:
                    await broker.publish_job(replace(job, status=JobStatus.FAILED), within=session)
                    raise RuntimeError("the change is rolled back")
            await change(db, broker, replace(job, status=JobStatus.SUCCEEDED))
            async with asyncio.timeout(WAIT):
                # The rolled-back FAILED never arrives; the committed change does.
                assert (await changes.get()).status is JobStatus.SUCCEEDED
    finally:
        await broker.close()


async def test_a_replica_that_falls_behind_drops_notifications_and_re_reads(db, monkeypatch):
    """The inbox is bounded: a burst larger than it is dropped (memory stays bounded)
    and what it announced is re-read, so the subscriber still ends on the last state."""
    from structlog.testing import capture_logs

    from app.core import pg_broker

    monkeypatch.setattr(pg_broker, "INBOX_LIMIT", 5)
    job = make_job("j-burst", status=JobStatus.RUNNING)
    await add(db, job)
    broker = PostgresBroker(db)
    await broker.start()
    try:
        with capture_logs() as logs:
            async with broker.subscribe(job_topic("j-burst")) as changes:
                async with db.transaction() as session:  # 50 notifications at one commit
                    for i in range(49):
                        await broker.publish_job(replace(job, reason=f"step {i}"), within=session)
                    done = replace(job, status=JobStatus.SUCCEEDED, exit_code=0)
                    await JobRepository(session).save_state(done)
                    await broker.publish_job(done, within=session)
                final = await next_status(changes, "j-burst", JobStatus.SUCCEEDED)
                assert final.exit_code == 0
        assert any(entry["event"] == "broker.inbox_full" for entry in logs)
    finally:
        await broker.close()


async def test_a_runtime_update_that_comes_while_the_database_is_away_is_applied_later(db, proxy):
    """The sync task retries an update the database could not take (it used to log
    `sync.apply_failed` and drop it, leaving the job RUNNING for good)."""
    from types import SimpleNamespace

    from app.core.broker import Broker
    from app.core.sync import RuntimeSync
    from app.runtime.base import JobUpdate

    await add(db, make_job("j-retry", status=JobStatus.RUNNING))
    updates: asyncio.Queue[JobUpdate] = asyncio.Queue()

    class OneRuntime:  # stands for a runtime: what it reports comes from this queue
        pool = SimpleNamespace(id="local")

        async def watch(self):
            while True:
                yield await updates.get()

    cut_db = Database(through(proxy, db.url))
    broker = Broker()
    sync = RuntimeSync(db=cut_db, broker=broker)
    try:
        async with broker.subscribe(job_topic("j-retry")) as changes:
            sync.start(OneRuntime())
            proxy.cut()
            updates.put_nowait(JobUpdate(job_id="j-retry", status=JobStatus.SUCCEEDED, exit_code=0))
            # The sync task tried to apply it while the database was away.
            assert await asyncio.to_thread(proxy.refused.wait, WAIT)
            proxy.restore()
            async with asyncio.timeout(WAIT):
                assert (await changes.get()).status is JobStatus.SUCCEEDED
        async with db.reader() as session:
            assert (await JobRepository(session).get("j-retry")).status is JobStatus.SUCCEEDED
    finally:
        await sync.close()
        await cut_db.dispose()
