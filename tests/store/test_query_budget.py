"""A page of jobs with their pods and events costs a fixed number of queries (DataLoaders),
whatever the page size."""

from __future__ import annotations

from sqlalchemy import event

from app.domain.jobs import JobEvent, Pod
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.schema import schema
from app.settings import Settings
from app.store.events import EventRepository
from app.store.jobs import JobRepository, PodRepository
from app.web.bootstrap import start_services, stop_services
from tests.store.test_repositories import make_job

PAGE = """
query($first: Int!) {
  jobs(first: $first) {
    totalCount
    nodes { jobId status pods { name phase } events { reason } }
  }
}
"""


async def test_a_page_costs_four_queries_whatever_its_size(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    try:
        async with services.db.transaction() as session:
            for i in range(60):
                job = make_job(f"j-q{i:03d}", minutes=i)
                await JobRepository(session).add(job)
                await PodRepository(session).replace(
                    job.job_id, [Pod(job_id=job.job_id, name=f"{job.job_id}-{r}", replica_index=r) for r in range(2)]
                )
                await EventRepository(session).add_new(
                    [JobEvent(job_id=job.job_id, reason="Created", message="x")]
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
            assert len(result.data["jobs"]["nodes"]) == size
            assert all(len(n["pods"]) == 2 and n["events"] for n in result.data["jobs"]["nodes"])
            counts[size] = len(statements)
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", listener)
        assert counts == {5: 4, 50: 4}, counts  # page, count, pods, events
    finally:
        await stop_services(services)


async def test_a_job_with_an_event_window_reads_the_job_once(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    try:
        async with services.db.transaction() as session:
            await JobRepository(session).add(make_job("j-once"))
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", listener)
        context = GraphQLContext(services=services, principal=Principal("alice"))
        result = await schema.execute(
            '{ job(id: "j-once") { jobId events(since: "2020-01-01T00:00:00Z") { reason } } }',
            context_value=context,
        )
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", listener)
        assert result.errors is None, result.errors
        assert len(statements) == 2, statements  # the job, its events: no second authorisation read
    finally:
        await stop_services(services)
