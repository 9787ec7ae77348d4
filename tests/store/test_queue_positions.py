"""`queuePosition` on a local pool, computed from the database by the domain's start order:
priority first, then arrival; held and not-waiting jobs have none; each pool and queue
counts on its own; a page of jobs asks the database once, whatever its size."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import event

from app.domain.jobs import Job, JobStatus
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.schema import schema
from app.settings import Settings
from app.store.jobs import JobRepository
from app.web.bootstrap import start_services, stop_services
from tests.store.test_repositories import make_job

PAGE = "query($first: Int!) { jobs(first: $first) { nodes { jobId queuePosition } } }"


def job(job_id: str, minutes: int, *, priority: int = 0, **kwargs: object) -> Job:
    made = make_job(job_id, minutes=minutes, **kwargs)  # type: ignore[arg-type]
    return replace(made, spec=replace(made.spec, priority=priority))


async def test_positions_follow_priority_then_arrival(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    try:
        jobs = [
            job("j-old", 0, status=JobStatus.QUEUED),
            job("j-urgent", 1, priority=5, status=JobStatus.QUEUED),
            job("j-held", 2, status=JobStatus.QUEUED),
            job("j-running", 3, priority=9, status=JobStatus.RUNNING),
            job("j-urgent2", 4, priority=5),  # PENDING waits too
            job("j-new", 5, status=JobStatus.QUEUED),
            job("j-other-queue", 6, status=JobStatus.QUEUED, queue="high"),
            job("j-done", 7, priority=9, status=JobStatus.SUCCEEDED),
        ]
        jobs[2].held = True
        async with services.db.transaction() as session:
            for each in jobs:
                await JobRepository(session).add(each)
        found = await services.jobs.queue_positions(jobs=jobs)
        assert found == {
            "j-urgent": 1, "j-urgent2": 2, "j-old": 3, "j-new": 4, "j-other-queue": 1,
        }
        # Asked about alone, a job gets the same place (the others are read, not given).
        assert await services.jobs.queue_positions(jobs=[jobs[5]]) == {"j-new": 4}
        # What the database holds counts, not the job as the caller read it earlier.
        stale = replace(jobs[5], spec=replace(jobs[5].spec, priority=7))
        assert await services.jobs.queue_positions(jobs=[stale]) == {"j-new": 4}
    finally:
        await stop_services(services)


async def test_a_page_with_positions_costs_one_more_query_whatever_its_size(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    try:
        async with services.db.transaction() as session:
            for i in range(60):
                await JobRepository(session).add(
                    job(f"j-p{i:03d}", i, priority=i % 3, status=JobStatus.QUEUED)
                )
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", listener)
        counts = {}
        for size in (5, 50):
            statements.clear()
            context = GraphQLContext(services=services, principal=Principal("alice"))
            result = await schema.execute(PAGE, variable_values={"first": size}, context_value=context)
            assert result.errors is None, result.errors
            nodes = result.data["jobs"]["nodes"]
            assert len(nodes) == size and all(n["queuePosition"] for n in nodes)
            counts[size] = len(statements)
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", listener)
        assert counts == {5: 2, 50: 2}, counts  # the page, the positions
        # Newest first: j-p059 (priority 2) is the last of the priority-2 jobs to start.
        first = result.data["jobs"]["nodes"][0]
        assert first == {"jobId": "j-p059", "queuePosition": 20}
    finally:
        await stop_services(services)
