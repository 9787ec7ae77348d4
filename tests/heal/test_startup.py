"""Start-up and shutdown are exception-safe: a failure half-way releases the broker, the
background tasks and the database engine that were already started."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from app.settings import Settings
from app.web.bootstrap import start_services
from tests.conftest import PG_BASE_URL
from tests.support.server import create_database, drop_database


def _sqlite_threads() -> set[threading.Thread]:
    """aiosqlite runs each open connection on a thread of its own."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def _backends(url: str) -> int:
    """Connections the server holds to its PostgreSQL database."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_BASE_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(tmp_path):
    if not PG_BASE_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'jobgraph.db'}"
        return
    url = await create_database(PG_BASE_URL)
    yield url
    await drop_database(PG_BASE_URL, url)


async def _settle_threads(threads: set[threading.Thread]) -> None:
    for thread in threads:
        await asyncio.to_thread(thread.join, 10)


async def test_a_start_that_fails_half_way_releases_what_it_started(tmp_path, database_url):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The local runtime cannot make its directory: it fails in `start`, after the
    # engine, the broker and the pool's sync task are up.
    (data_dir / "local").write_text("a file where the runtime wants a directory")
    settings = Settings(data_dir=data_dir, database_url=database_url)
    tasks_before = asyncio.all_tasks()
    threads_before = _sqlite_threads()

    with pytest.raises(OSError):
        await start_services(settings)

    leaked = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert leaked == [], leaked
    await _settle_threads(_sqlite_threads() - threads_before)
    assert _sqlite_threads() - threads_before == set(), "an SQLite connection was left open"
    if PG_BASE_URL:
        assert await _backends(database_url) == 0  # engine pool and LISTEN connection closed

