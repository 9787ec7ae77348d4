"""The broker delivers published changes to subscribers; over PostgreSQL LISTEN/NOTIFY it
does so across replicas (two brokers on one database stand for two servers)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.core.broker import ALL_JOBS_TOPIC, Broker, events_topic, job_topic
from app.core.pg_broker import PostgresBroker
from app.domain.jobs import JobEvent, JobStatus
from app.store.events import EventRepository
from app.store.jobs import JobRepository
from tests.conftest import PG_BASE_URL
from tests.store.test_repositories import add, make_job


async def test_in_process_broker_fans_out_and_bounds_slow_subscribers():
    broker = Broker()
    async with broker.subscribe("t") as first, broker.subscribe("t") as second:
        for i in range(1500):
            broker.publish("t", i)
        assert first.qsize() == second.qsize() == 1000  # the oldest were dropped
        assert first.get_nowait() == 500
        broker.publish("other", "x")
    assert broker.subscriber_count("t") == 0


@pytest.mark.skipif(not PG_BASE_URL, reason="LISTEN/NOTIFY needs PostgreSQL (CI runs it)")
async def test_postgres_broker_reaches_another_replica(db):
    job = make_job("j-bus1", status=JobStatus.RUNNING)
    await add(db, job)
    event = JobEvent(job_id="j-bus1", reason="Started", message="go", key="ev-1")
    async with db.transaction() as session:
        await EventRepository(session).add_new([event])
    one, two = PostgresBroker(db), PostgresBroker(db)
    await one.start()
    await two.start()
    try:
        async with two.subscribe(job_topic("j-bus1")) as jobs, two.subscribe(
            events_topic("j-bus1")
        ) as events, one.subscribe(ALL_JOBS_TOPIC) as mine:
            one.publish(job_topic("j-bus1"), job)
            one.publish(ALL_JOBS_TOPIC, job)
            one.publish(events_topic("j-bus1"), event)
            async with asyncio.timeout(10):
                seen = await jobs.get()
                assert seen.job_id == "j-bus1"
                assert seen.status is JobStatus.RUNNING and seen.spec == job.spec
                assert (await events.get()).key == "ev-1"
                assert (await mine.get()).job_id == "j-bus1"  # the publisher hears itself
            # A job too large for a NOTIFY payload is read back from the database.
            async with db.transaction() as session:
                await JobRepository(session).mark_stopping("j-bus1")
            big = replace(job, spec=replace(job.spec, command=("x" * 9000,)))
            one.publish(job_topic("j-bus1"), big)
            async with asyncio.timeout(10):
                assert (await jobs.get()).status is JobStatus.STOPPING
    finally:
        await one.close()
        await two.close()
