"""The broker over PostgreSQL LISTEN/NOTIFY, for several jobgraph replicas on one database.

Every replica, the publishing one included, hears each notification and delivers it to
its own subscribers. A job travels whole, so each status it passed through is seen; a
NOTIFY payload is limited to 8000 bytes, so a job too large for it (a long command) is
named by id and read back from the database instead.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog

from app.core.broker import Broker
from app.domain.jobs import Job, JobEvent
from app.store.db import Database
from app.store.events import EventRepository
from app.store.jobs import JobRepository

log = structlog.get_logger(__name__)
CHANNEL = "jobgraph_changes"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresBroker(Broker):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        dsn = asyncpg_dsn(self.db.url)
        self._listener = await asyncpg.connect(dsn)
        self._sender = await asyncpg.connect(dsn)
        await self._listener.add_listener(CHANNEL, self._heard)
        # One sender and one receiver keep notifications in the order they were published.
        self._tasks.append(asyncio.create_task(self._send_loop()))
        self._tasks.append(asyncio.create_task(self._receive_loop()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._listener, self._sender):
            if conn is not None:
                await conn.close()

    def _publish_to(self, topics: tuple[str, ...], message: Any) -> None:
        """One notification for all the topics of a change."""
        if isinstance(message, Job):
            note = {"topics": topics, "job": message.job_id, "snapshot": message.to_dict()}
        elif isinstance(message, JobEvent):
            note = {"topics": topics, "job": message.job_id, "event": message.key}
        else:
            raise TypeError(f"cannot publish {type(message).__name__} across replicas")
        payload = json.dumps(note)
        if len(payload.encode()) > MAX_PAYLOAD:
            note.pop("snapshot")
            payload = json.dumps(note)
        self._outbox.put_nowait(payload)

    async def _send_loop(self) -> None:
        while True:
            payload = await self._outbox.get()
            try:
                await self._sender.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            except Exception:
                log.exception("broker.notify_failed")

    def _heard(self, _conn, _pid, _channel, payload: str) -> None:
        self._inbox.put_nowait(payload)

    async def _receive_loop(self) -> None:
        while True:
            payload = await self._inbox.get()
            try:
                await self._resolve(json.loads(payload))
            except Exception:
                log.exception("broker.resolve_failed")

    async def _resolve(self, note: dict[str, Any]) -> None:
        if "snapshot" in note:
            message = Job.from_dict(note["snapshot"])
        else:
            async with self.db.reader() as session:
                if "event" in note:
                    message = await EventRepository(session).get(note["job"], note["event"])
                else:
                    message = await JobRepository(session).get(note["job"])
        if message is not None:
            for topic in note["topics"]:
                self.deliver(topic, message)
