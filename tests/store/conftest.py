"""A migrated database: SQLite by default, PostgreSQL when JOBGRAPH_TEST_DATABASE_URL is set."""

from __future__ import annotations

import pytest

from app.store.db import Database
from app.store.migrate import upgrade_async
from tests.conftest import PG_BASE_URL
from tests.support.server import create_database, drop_database


@pytest.fixture
async def db(tmp_path):
    if PG_BASE_URL:
        url = await create_database(PG_BASE_URL)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade_async(url)
    database = Database(url)
    yield database
    await database.dispose()
    if PG_BASE_URL:
        await drop_database(PG_BASE_URL, url)
