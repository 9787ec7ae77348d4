"""Live pool usage costs one aggregation per burst of changes, shared by all the pool's
subscribers, and reaches the subscribers of another server on the same PostgreSQL
database (services started in-process, on the database of the `db` fixture)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import event

from app.domain.jobs import JobStatus
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.schema import schema
from app.settings import Settings
from app.store.jobs import JobRepository
from app.web.bootstrap import start_services, stop_services
from tests.store.test_repositories import make_job

SUBSCRIBERS = 200
CHANGES = 100


async def _usage_until(stream, condition, timeout: float = 20.0):
    async with asyncio.timeout(timeout):
        while True:
            usage = await anext(stream)
            if condition(usage):
                return usage


async def _add_queued(services, prefix: str, count: int) -> None:
    """`count` queued jobs of the pool `local`, announced in one transaction."""
    async with services.db.transaction() as session:
        jobs = JobRepository(session)
        for i in range(count):
            job = replace(make_job(f"j-{prefix}{i:03d}", minutes=i), status=JobStatus.QUEUED)
            await jobs.add(job)
            await services.broker.publish_job(job, within=session)


async def test_a_burst_of_changes_costs_few_aggregations_for_all_subscribers(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    usage = services.usage
    streams = [
        usage.pool_updates(actor=Principal(f"user{i}"), pool_id="local") for i in range(SUBSCRIBERS)
    ]
    try:
        firsts = await asyncio.gather(*(anext(s) for s in streams))
        assert {(u.queued_jobs, u.running_jobs) for u in firsts} == {(0, 0)}
        # However the first subscribers raced, their first value cost very few reads.
        assert usage.watch.refreshes <= 3
        aggregations: list[str] = []

        def counted(_conn, _cursor, statement, *_args) -> None:
            if "GROUP BY jobs.pool_id" in statement:
                aggregations.append(statement)

        event.listen(services.db.engine.sync_engine, "before_cursor_execute", counted)
        before = usage.watch.refreshes
        await _add_queued(services, "burst", CHANGES)
        finals = await asyncio.gather(
            *(_usage_until(s, lambda u: u.queued_jobs == CHANGES) for s in streams)
        )
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", counted)
        assert all(u.queued_jobs == CHANGES and u.slots_total == 4 for u in finals)
        # 100 changes for 200 subscribers: not 20,000 reads, nor 100. In-process the
        # burst arrives at once (one read); over LISTEN/NOTIFY it may come in a few parts.
        refreshes = usage.watch.refreshes - before
        # (A read counted may still be running: the first one already saw all 100.)
        assert 1 <= len(aggregations) <= refreshes <= 5, (len(aggregations), refreshes)
        if db.engine.dialect.name == "sqlite":
            assert refreshes == 1
        # A new subscriber is served the current usage without a read (once the burst is
        # over: over LISTEN/NOTIFY its last part may still be coming).
        refreshes, settled = usage.watch.refreshes, usage.watch.latest("local")
        late = usage.pool_updates(actor=Principal("late"), pool_id="local")
        assert (await anext(late)).queued_jobs == CHANGES
        if db.engine.dialect.name == "sqlite":
            assert settled is not None
        if settled is not None:
            assert usage.watch.refreshes == refreshes
        await late.aclose()
    finally:
        for stream in streams:
            await stream.aclose()
        await stop_services(services)


async def test_pool_usage_reaches_the_subscribers_of_another_server(db, tmp_path):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several servers share changes through PostgreSQL LISTEN/NOTIFY")
    one = await start_services(Settings(data_dir=tmp_path / "one", database_url=db.url))
    two = await start_services(Settings(data_dir=tmp_path / "two", database_url=db.url))
    stream = two.usage.pool_updates(actor=Principal("watcher"), pool_id="local")
    try:
        assert (await anext(stream)).queued_jobs == 0
        await _add_queued(one, "remote", 3)  # announced by the first server only
        assert (await _usage_until(stream, lambda u: u.queued_jobs == 3)).queued_jobs == 3
        # A deletion is no job change: the pool itself is announced.
        await one.jobs.delete(actor=Principal("root", is_admin=True), job_id="j-remote000")
        assert (await _usage_until(stream, lambda u: u.queued_jobs == 2)).queued_jobs == 2
    finally:
        await stream.aclose()
        await stop_services(two)
        await stop_services(one)


POOLS = """
pools:
  - {id: one, runtime: local}
  - {id: two, runtime: local, maxConcurrentJobs: 2, capacity: {gpu: 8}}
  - {id: three, runtime: local}
"""


async def test_the_usage_of_every_pool_costs_one_query(db, tmp_path):
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS)
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url, pools_file=pools)
    services = await start_services(settings)
    aggregations: list[str] = []

    def counted(_conn, _cursor, statement, *_args) -> None:
        if "GROUP BY jobs.pool_id" in statement:
            aggregations.append(statement)

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", counted)
    try:
        context = GraphQLContext(services=services, principal=Principal("alice"))
        result = await schema.execute(
            "{ resourcePools { id usage { poolId slotsTotal gpusTotal runningJobs } } }",
            context_value=context,
        )
        assert result.errors is None, result.errors
        assert [(p["id"], p["usage"]["slotsTotal"], p["usage"]["gpusTotal"]) for p in result.data["resourcePools"]] == [
            ("one", 4, None), ("two", 2, 8), ("three", 4, None)
        ]
        assert len(aggregations) == 1
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", counted)
        await stop_services(services)
