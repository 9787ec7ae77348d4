"""How many SQL statements a GraphQL read costs, counted on the engine (issue 11: one
query for a job with its pods; issue 9 point 15: events of a page of jobs, in a time
window, in one query through the DataLoader, not one per job)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import event

from app.core.broker import Broker
from app.core.jobs import JobService
from app.core.pools import PoolCatalog
from app.core.runtimes import RuntimeRegistry
from app.domain.jobs import EventType, JobEvent, Pod, PodPhase
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.schema import schema
from app.store.events import EventRepository
from app.store.jobs import PodRepository
from tests.store.test_repositories import T0, add, make_job


async def statements_of(db, query: str, principal: Principal) -> tuple[dict, int]:
    jobs = JobService(db=db, pools=PoolCatalog.load(None), runtimes=RuntimeRegistry({}), broker=Broker())
    services = SimpleNamespace(jobs=jobs, settings=SimpleNamespace(max_query_cost=25_000))
    context = GraphQLContext(services=services, principal=principal)  # type: ignore[arg-type]
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        # The application's reads (not a driver's own catalog queries).
        if statement.lstrip().upper().startswith("SELECT") and "pg_catalog" not in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        result = await schema.execute(query, context_value=context)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert not result.errors, result.errors
    return result.data, len(seen)


async def test_a_job_with_pods_is_one_query_and_a_pages_events_one_more(db):
    jobs = [make_job(f"j-rt{i}", owner="alice", minutes=i) for i in range(5)]
    await add(db, *jobs)
    async with db.transaction() as session:
        for job in jobs:
            await PodRepository(session).replace(job.job_id, [
                Pod(job_id=job.job_id, name=f"{job.job_id}-0", replica_index=0, phase=PodPhase.RUNNING)])
            await EventRepository(session).add_new([
                JobEvent(job_id=job.job_id, reason=f"R{n}", message="", key=f"e{n}",
                         type=EventType.NORMAL, timestamp=T0 + timedelta(minutes=n))
                for n in range(3)])
    alice = Principal(user="alice")

    data, count = await statements_of(db, '{ job(id: "j-rt1") { jobId pods { name } } }', alice)
    assert data["job"]["pods"] == [{"name": "j-rt1-0"}]
    assert count == 1

    since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=2)).isoformat()
    window = (
        f'{{ jobs(first: 5) {{ nodes {{ jobId events(since: "{since}", until: "{until}") '
        "{ reason } } } }"
    )
    data, count = await statements_of(db, window, alice)
    assert [n["events"] for n in data["jobs"]["nodes"]] == [[{"reason": "R1"}, {"reason": "R2"}]] * 5
    assert count == 2  # the page, then every job's events in the window

    # Another user reads none of it: the readability is in the statements themselves.
    data, _ = await statements_of(db, window, Principal(user="mallory"))
    assert data["jobs"]["nodes"] == []
