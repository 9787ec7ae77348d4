"""Apply the Alembic migrations in `app/store/migrations/` programmatically (`jobgraph migrate`).

Alembic is imported only when a migration has to run: a server started on a database
that is already at the newest revision (every start but the first) never loads it, which
keeps ~11 MiB out of its memory (bench/README.md, "Memory")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from app.store.db import Database, is_unavailable, unavailable

if TYPE_CHECKING:
    from alembic.config import Config

# Inside the package, so a plain `pip install .` ships them.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema. Safe to run repeatedly."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    # env.py runs its own event loop, so run it off this one.
    await asyncio.to_thread(upgrade, database_url)


def head_revision() -> str:
    """The newest revision, from the file names: the history is one line and each file
    is named by its revision (`0005_waiting_jobs.py` is "0005"). A test holds this to
    Alembic's own idea of the head."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


async def current_revision(db: Database) -> str | None:
    """The revision the database is at; None before its first migration."""
    try:
        async with db.engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            return result.scalar()
    except DBAPIError as error:
        if is_unavailable(error):
            raise unavailable(error) from error
        return None  # no alembic_version table: a new database


async def upgrade_if_behind(db: Database) -> None:
    """Migrate unless the database is already at the newest revision."""
    if await current_revision(db) != head_revision():
        await upgrade_async(db.url)
