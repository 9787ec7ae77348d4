"""PostgreSQL LISTEN/NOTIFY: a notification sent inside a transaction (delivered by
PostgreSQL when, and only when, it commits), and the connection that listens."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CONNECT_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 10.0


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


class Listener:
    """One connection LISTENing on `channel`. `on_payload` gets each notification;
    `on_lost` is called once if the connection ends without `close()`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def connect(
        cls, url: str, channel: str, *,
        on_payload: Callable[[str], None], on_lost: Callable[[], None],
    ) -> Listener:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            conn.add_termination_listener(lambda _conn: on_lost())
            await conn.add_listener(channel, lambda _c, _pid, _ch, payload: on_payload(payload))
        except BaseException:
            conn.terminate()
            raise
        return cls(conn)

    async def ping(self) -> None:
        """Raises when the connection no longer answers (a silent network cut is only
        noticed by talking)."""
        await self._conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS)

    async def close(self) -> None:
        if self._conn.is_closed():
            return
        try:
            await self._conn.close(timeout=5)
        except Exception:
            self._conn.terminate()
