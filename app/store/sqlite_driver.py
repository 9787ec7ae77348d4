"""aiosqlite with one trip to its thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's
adapter makes one call per DB-API step: a cursor, execute, fetchall, close, and the
rollback that ends every read. Each is a hand-off between the event loop and that
thread, and on a busy machine each hand-off is a context switch that may wait for a core
(profiled: 40-60 % of the event loop's time on a read, issue 11). Here a statement is
one hand-off: the cursor is made, executed, fetched and closed on the thread in one
call, and a commit or rollback with no transaction open (sqlite3 opens one only before
a write) costs nothing. What SQLAlchemy sees is the same DB-API: description, rowcount,
lastrowid and the rows.

Used by `app.store.db.create_engine` for SQLite files, through SQLAlchemy's documented
`async_creator` hook; the connection is an aiosqlite.Connection (its thread, its queue,
its close), only `cursor`, `commit` and `rollback` differ.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

_Result = tuple[Any, int, int | None, list[Any] | None]


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Result:
    """On the connection's thread: the whole statement, rows included."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy's adapter uses; the rows of a
    statement are all read with it (SQLAlchemy's non-streaming cursor reads them all
    right after execute anyway)."""

    def __init__(self, conn: OneTripConnection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _statement(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        self.description, self.rowcount, self.lastrowid, rows = await self._conn.run(
            _run, sql, parameters, many
        )
        self._rows = rows or []
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        return await self._statement(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        return await self._statement(sql, parameters, True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    async def run(self, fn: Any, *args: Any) -> Any:
        """`fn(sqlite3_connection, *args)` on the connection's thread."""
        return await self._execute(partial(fn, self._conn, *args))

    def cursor(self) -> OneTripCursor:  # type: ignore[override]  # no trip to make one
        return OneTripCursor(self)

    async def commit(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            await super().rollback()


async def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like `aiosqlite.connect(database, **kwargs)`, awaited."""
    connection = OneTripConnection(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy sets it for aiosqlite's own
    await connection  # starts the thread and connects
    return connection


__all__: Sequence[str] = ("OneTripConnection", "OneTripCursor", "connect")
