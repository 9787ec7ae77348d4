"""What a statement costs below SQLAlchemy (issue 11).

SQLite: one trip to aiosqlite's thread per statement (app/store/sqlite_driver.py): a read
is one trip, no cursor, fetch, close or rollback trips around it; a write transaction is
its statements and the commit. Counted on the connections' own hand-off
(`aiosqlite.Connection._execute`, run as usual).

PostgreSQL: a read runs in autocommit (app/store/db.py): no BEGIN and ROLLBACK around it
and a one-statement pre-ping; a unit of work is a READ COMMITTED transaction. Counted
with asyncpg's own query logger (it logs the simple-protocol statements: transaction
control and the ping)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiosqlite
import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from app.domain.jobs import Pod, PodPhase
from app.domain.listing import Audience
from app.store.db import Database
from app.store.jobs import JobRepository, PodRepository
from app.store.sqlite_driver import OneTripConnection
from tests.conftest import PG_BASE_URL
from tests.store.test_repositories import add, make_job

sqlite_only = pytest.mark.skipif(bool(PG_BASE_URL), reason="the SQLite driver")
postgres_only = pytest.mark.skipif(not PG_BASE_URL, reason="needs PostgreSQL (JOBGRAPH_TEST_DATABASE_URL)")


@contextmanager
def trips() -> Iterator[list[str]]:
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        seen.append(getattr(fn, "func", fn).__name__)
        return await original(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]


@sqlite_only
async def test_a_read_is_one_trip_and_a_write_its_statements_and_the_commit(db):
    job = make_job("j-trip1")
    await add(db, job)  # also opens the pool's connection (connect, pragmas)
    async with db.transaction() as session:
        await PodRepository(session).replace(job.job_id, [
            Pod(job_id=job.job_id, name="j-trip1-0", replica_index=0, phase=PodPhase.RUNNING)])

    with trips() as seen:
        async with db.reader() as session:
            found = await JobRepository(session).get_readable(
                job.job_id, visible_to=Audience(user="alice"), with_pods=True)
    assert found is not None and [p.name for p in found[1]] == ["j-trip1-0"]
    assert seen == ["_run"]  # the statement, fetched and closed on the thread; no rollback

    with trips() as seen:
        await add(db, make_job("j-trip2"))
    assert seen[-1] == "commit" and set(seen[:-1]) == {"_run"}
    async with db.reader() as session:
        assert await JobRepository(session).get("j-trip2") is not None


@sqlite_only
async def test_a_failed_write_rolls_back_and_raises_the_drivers_error(db):
    await add(db, make_job("j-trip3"))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await PodRepository(session).replace("j-trip3", [
                Pod(job_id="j-trip3", name="p", replica_index=0, phase=PodPhase.RUNNING)])
            await JobRepository(session).add(make_job("j-trip3"))  # the same id again
    async with db.reader() as session:
        assert await PodRepository(session).for_jobs(["j-trip3"], visible_to=None) == {"j-trip3": []}
    # The engine's connections are this driver's.
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, OneTripConnection)


@postgres_only
async def test_a_postgres_read_is_its_statement_alone_and_a_write_a_transaction(db):
    fresh = Database(db.url)  # its connections are made after the logger is in place
    logged: list[str] = []

    @event.listens_for(fresh.engine.sync_engine, "connect")
    def _log_queries(dbapi_connection, _record) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda query: logged.append(query.query))

    try:
        await add(fresh, make_job("j-trip4"))
        assert logged[0].startswith("BEGIN ISOLATION LEVEL READ COMMITTED") and logged[-1] == "COMMIT;"
        logged.clear()
        async with fresh.reader() as session:
            assert await JobRepository(session).get("j-trip4") is not None
        assert logged == [";"]  # the pool's pre-ping; no BEGIN, no ROLLBACK
    finally:
        await fresh.dispose()
