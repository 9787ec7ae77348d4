"""Migrations that move data, run on SQLite and (with JOBGRAPH_TEST_DATABASE_URL) on
PostgreSQL, from the revision before them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from app.domain.listing import Audience, JobFilter, PageRequest
from app.store.db import Database
from app.store.jobs import JobRepository
from app.store.migrate import alembic_config, current_revision, head_revision, upgrade_if_behind
from tests.conftest import PG_BASE_URL
from tests.store.test_repositories import make_job
from tests.support.server import create_database, drop_database


@pytest.fixture
async def url(tmp_path):
    if PG_BASE_URL:
        url = await create_database(PG_BASE_URL)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrating.db'}"
    yield url
    if PG_BASE_URL:
        await drop_database(PG_BASE_URL, url)


async def migrate(url: str, revision: str, *, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    await asyncio.to_thread(step, alembic_config(url), revision)


async def execute(url: str, *statements: str) -> list[list[tuple]]:
    """Plain SQL in one transaction: the rows each statement answered."""
    engine = create_async_engine(url)
    answers: list[list[tuple]] = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(sa.text(statement))
                answers.append([tuple(row) for row in result.all()] if result.returns_rows else [])
    finally:
        await engine.dispose()
    return answers


def job_insert(job_id: str, groups: str) -> str:
    stamp = datetime(2026, 11, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
    config = json.dumps(make_job(job_id).spec.to_config())
    return (
        "INSERT INTO jobs (id, name, owner, status, pool_id, queue, priority, config, "
        f"created_at, updated_at, shared_groups) VALUES ('{job_id}', '{job_id}', 'bob', "
        f"'RUNNING', 'local', 'default', 0, '{config}', '{stamp}', '{stamp}', '{groups}')"
    )


async def test_share_groups_move_from_the_json_column_into_the_table_and_back(url):
    await migrate(url, "0003")
    await execute(
        url,
        job_insert("j-mv1", '["vision", "nlp"]'),
        job_insert("j-mv2", "[]"),
        # The table and the list disagreed: the list (what the API answered) wins.
        job_insert("j-mv3", '["ops"]'),
        "INSERT INTO job_shares (job_id, group_name) VALUES ('j-mv1', 'vision')",
        "INSERT INTO job_shares (job_id, group_name) VALUES ('j-mv1', 'nlp')",
        "INSERT INTO job_shares (job_id, group_name) VALUES ('j-mv3', 'stale')",
        "INSERT INTO pods (job_id, name, replica_index, phase, restart_count) "
        "VALUES ('j-mv1', 'j-mv1-0', 0, 'RUNNING', 0)",
    )
    await migrate(url, "head")

    [shares, pods] = await execute(
        url,
        "SELECT job_id, group_name, position FROM job_shares ORDER BY job_id, position",
        "SELECT name FROM pods",
    )
    assert shares == [("j-mv1", "vision", 0), ("j-mv1", "nlp", 1), ("j-mv3", "ops", 0)]
    assert pods == [("j-mv1-0",)]  # rebuilding the jobs table (SQLite) kept its children
    database = Database(url)
    try:
        async with database.reader() as session:
            repo = JobRepository(session)
            assert (await repo.get("j-mv1")).shared_with == ("vision", "nlp")
            assert (await repo.get("j-mv2")).shared_with == ()
            page = await repo.list(
                job_filter=JobFilter(), page=PageRequest(), visible_to=Audience("ann", ("nlp",))
            )
            assert [(j.job_id, j.shared_with) for j in page.jobs] == [("j-mv1", ("vision", "nlp"))]
    finally:
        await database.dispose()
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: {x["name"] for x in sa.inspect(c).get_columns("jobs")})
    finally:
        await engine.dispose()
    assert "shared_groups" not in columns

    # And back: the list is rebuilt from the table, in order.
    await migrate(url, "0003", down=True)
    [lists] = await execute(url, "SELECT id, shared_groups FROM jobs ORDER BY id")
    assert [(job_id, json.loads(groups) if isinstance(groups, str) else groups)
            for job_id, groups in lists] == [("j-mv1", ["vision", "nlp"]), ("j-mv2", []), ("j-mv3", ["ops"])]


def test_the_head_read_from_the_file_names_is_alembics_head():
    from alembic.script import ScriptDirectory

    assert head_revision() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def test_a_new_database_is_migrated_and_one_at_the_head_is_left_alone(url, monkeypatch):
    db = Database(url)
    try:
        assert await current_revision(db) is None
        await upgrade_if_behind(db)
        assert await current_revision(db) == head_revision()
        assert (await execute(url, "SELECT count(*) FROM jobs")) == [[(0,)]]

        async def must_not_run(_url: str) -> None:
            raise AssertionError("a database at the head was migrated again")

        monkeypatch.setattr("app.store.migrate.upgrade_async", must_not_run)
        await upgrade_if_behind(db)
    finally:
        await db.dispose()


async def test_a_database_one_revision_behind_is_brought_to_the_head(url):
    await migrate(url, "0004")
    db = Database(url)
    try:
        assert await current_revision(db) == "0004"
        await upgrade_if_behind(db)
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()
