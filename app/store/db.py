"""Engine and the one place where sessions are committed.

A database that cannot be reached (connection refused or lost, the server shutting down
or starting up) surfaces as `DatabaseUnavailable`, a domain error with a clear message,
so requests answer 503 and background writers know to retry."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.domain.errors import DatabaseUnavailable
from app.store import sqlite_driver

# SQLSTATEs of a server that is away: class 08 (connection exception), shutting down
# (57P01, 57P02), starting up (57P03), out of connections (53300).
_AWAY_STATES = ("57P01", "57P02", "57P03", "53300")
_AFTER_COMMIT = "jobgraph.after_commit"


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached right now (worth retrying),
    as opposed to a statement that is wrong."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable | OSError | TimeoutError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _AWAY_STATES):
            return True
        if isinstance(current, sqlite3.OperationalError) and "locked" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def unavailable(error: BaseException) -> DatabaseUnavailable:
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return DatabaseUnavailable(
        f"the database cannot be reached right now ({detail}); try again shortly"
    )


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.database in (None, "", ":memory:") or parsed.query:
            engine = create_async_engine(url, connect_args={"timeout": 30})
        else:
            # A file: one trip to aiosqlite's thread per statement (see sqlite_driver).
            # The pool stays at SQLAlchemy's 5 (+10): under 16 concurrent clients the
            # connections beyond 5 are opened and closed per request (~10 % of the
            # loop's time), but every pooled connection keeps its page cache and thread:
            # 20 of them cost ~12 MiB more after 10,000 jobs (bench/README.md, "Memory").
            engine = create_async_engine(
                url, async_creator=partial(
                    sqlite_driver.connect, parsed.database, timeout=30, check_same_thread=False
                ),
            )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            # WAL lets readers proceed while the sync task writes; foreign keys are off
            # by default in SQLite.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Each connection's page cache, 2 MiB by default, fills as the database
            # grows (the server's memory grew with the number of jobs run); 512 KiB keeps
            # the hot b-tree pages, the OS caches the file for the rest.
            cursor.execute("PRAGMA cache_size=-512")
            cursor.close()

        return engine
    # PostgreSQL: a connection is in autocommit unless a unit of work opens a transaction
    # (`Database.transaction`, READ COMMITTED), so a read is its statement alone: no
    # BEGIN and ROLLBACK round trips around it, and the pool's pre-ping is one round trip
    # instead of three (issue 11's profile: 6 round trips per read). At READ COMMITTED
    # a statement sees the same inside a transaction as outside one.
    return create_async_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        writes = (
            self.engine.execution_options(isolation_level="READ COMMITTED")
            if self.engine.dialect.name == "postgresql" else self.engine
        )
        self._sessions = async_sessionmaker(writes, class_=AsyncSession, expire_on_commit=False)
        self._readers = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends, rolled back on error."""
        try:
            async with self._sessions() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except Exception as error:
            if is_unavailable(error) and not isinstance(error, DatabaseUnavailable):
                raise unavailable(error) from error
            raise
        for callback in session.info.pop(_AFTER_COMMIT, ()):
            callback()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (nothing to commit; on PostgreSQL each statement on its
        own, see `create_engine`)."""
        try:
            async with self._readers() as session:
                yield session
        except Exception as error:
            if is_unavailable(error) and not isinstance(error, DatabaseUnavailable):
                raise unavailable(error) from error
            raise

    @property
    def sqlite_file(self) -> Path | None:
        """The database file on SQLite (None on PostgreSQL or in memory)."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as error:
            if is_unavailable(error):
                raise unavailable(error) from error
            raise

    async def dispose(self) -> None:
        await self.engine.dispose()
