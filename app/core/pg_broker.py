"""The broker over PostgreSQL LISTEN/NOTIFY, for several jobgraph replicas on one database.

Every replica, the publishing one included, hears each notification and delivers it to
its own subscribers. A job travels whole, so each status it passed through is seen; a
NOTIFY payload is limited to 8000 bytes, so a job too large for it (a long command) is
named by id and read back from the database instead.

Notifications are sent in the transaction of the change they announce. PostgreSQL does
not keep them for a listener that is away, so the listening connection is watched (its
end, and a ping when it is quiet) and reconnected with backoff and jitter; after a
reconnect, or when this replica fell so far behind that it dropped notifications, what
changed meanwhile is re-read from the database and re-sent to the subscribers, so none
misses a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)

from app.core.broker import ALL_JOBS_TOPIC, TOKENS_TOPIC, Broker, events_topic, job_topic
from app.core.supervision import supervised
from app.domain.errors import DatabaseUnavailable
from app.domain.jobs import Job, JobEvent, JobRemoved, utcnow
from app.domain.tokens import TokenRevoked
from app.domain.usage import PoolChanged
from app.store.db import Database, after_commit
from app.store.events import EventRepository
from app.store.jobs import JobRepository
from app.store.notifications import Listener, notify

log = structlog.get_logger(__name__)
CHANNEL = "jobgraph_changes"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes
# Notifications heard but not yet handed out; past this the oldest are dropped and what
# they announced is re-read instead (memory stays bounded however fast changes come).
INBOX_LIMIT = 10_000
OUTBOX_LIMIT = 10_000
PING_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 5.0
# Re-read from a little before the connection was last known good: clocks of replicas
# differ, and a change stamped just before a cut may be announced just after it.
RESYNC_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class _Heard:
    at: datetime
    payload: str


@dataclass(frozen=True, slots=True)
class _Resync:
    since: datetime


class PostgresBroker(Broker):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._listener: Listener | None = None
        self._lost = asyncio.Event()
        self._inbox: asyncio.Queue[_Heard | _Resync] = asyncio.Queue(maxsize=INBOX_LIMIT)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._good_until = utcnow()  # the time up to which nothing was missed
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0
        # False from the moment the listening connection is known lost until what was
        # missed has been re-read: caches must not answer meanwhile.
        self._hearing = True
        # Marks this process's own notifications: their listeners were told at the
        # commit, so hearing them back reaches the subscribers only.
        self._origin = secrets.token_hex(8)

    async def start(self) -> None:
        # The first connection is not retried: a database that is away at start-up
        # stops the server with the reason.
        self._listener = await self._connect()
        self._tasks = [
            supervised("broker:connection", self._keep_connected),
            supervised("broker:receive", self._receive_loop),
            supervised("broker:send", self._send_loop),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()

    # ---------------------------------------------------------------- publishing

    @property
    def hearing(self) -> bool:
        return self._hearing and not self._lost.is_set()

    async def _stage(self, session: AsyncSession, topics: tuple[str, ...], message: Any) -> None:
        """NOTIFY in the change's own transaction: PostgreSQL sends it on commit. This
        process's caches are told at the commit itself, so a client reads its own write
        here before the notification has made the round trip."""
        await notify(session, CHANNEL, _payload(topics, message, origin=self._origin))
        after_commit(session, partial(self._tell_all_listeners, topics, message))

    def _tell_all_listeners(self, topics: tuple[str, ...], message: Any) -> None:
        for topic in topics:
            self._tell_listeners(topic, message)

    def _publish_to(self, topics: tuple[str, ...], message: Any) -> None:
        """A message outside any transaction: sent by the send loop, retried while the
        database is away."""
        if self._outbox.full():
            self._outbox.get_nowait()
            log.warning("broker.outbox_full", dropped=1)
        self._outbox.put_nowait(_payload(topics, message))

    async def _send_loop(self) -> None:
        while True:
            payload = await self._outbox.get()
            async for attempt in _retrying("broker.notify_retry"):
                with attempt:
                    async with self.db.transaction() as session:
                        await notify(session, CHANNEL, payload)

    # ---------------------------------------------------------------- the connection

    async def _connect(self) -> Listener:
        lost = asyncio.Event()
        self._lost = lost
        return await Listener.connect(
            self.db.url, CHANNEL, on_payload=self._heard, on_lost=lost.set
        )

    async def _keep_connected(self) -> None:
        while True:
            try:
                async with asyncio.timeout(PING_SECONDS):
                    await self._lost.wait()
            except TimeoutError:
                if await self._answers():
                    self._good_until = max(self._good_until, _before_ping())
                    continue
            await self._reconnect()

    async def _answers(self) -> bool:
        if self._listener is None:
            return False
        try:
            await self._listener.ping()
        except Exception as error:
            log.warning("broker.ping_failed", error=repr(error))
            return False
        return True

    async def _reconnect(self) -> None:
        self._hearing = False
        missed_since = self._good_until
        log.warning("broker.connection_lost", since=missed_since.isoformat())
        if self._listener is not None:
            old, self._listener = self._listener, None
            with contextlib.suppress(Exception):  # it is gone already
                await old.close()
        async for attempt in _retrying("broker.reconnect_retry", DatabaseUnavailable, OSError):
            with attempt:
                try:
                    self._listener = await self._connect()
                except Exception as error:
                    # asyncpg raises its own types for a server that is going away or
                    # coming back; every failure here is retried.
                    raise DatabaseUnavailable(str(error)) from error
        self.reconnects += 1
        log.info("broker.reconnected", reconnects=self.reconnects)
        await self._request_resync(missed_since)

    # ---------------------------------------------------------------- receiving

    def _heard(self, payload: str) -> None:
        if self._inbox.full():
            # Fallen this far behind: drop what waits and re-read the state instead.
            self._hearing = False
            since = self._good_until
            while not self._inbox.empty():
                self._inbox.get_nowait()
            log.warning("broker.inbox_full", resync_since=since.isoformat())
            self._inbox.put_nowait(_Resync(since))
        self._inbox.put_nowait(_Heard(utcnow(), payload))

    async def _request_resync(self, since: datetime) -> None:
        if self._inbox.full():
            self._inbox.get_nowait()
        self._inbox.put_nowait(_Resync(since))

    async def _receive_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Resync):
                await self._resync_retrying(item.since)
                continue
            try:
                await self._resolve(json.loads(item.payload))
            except DatabaseUnavailable:
                # The snapshot had to be read back and the database is away: what it
                # announced is re-read once the database answers.
                await self._resync_retrying(item.at)
            except Exception:
                log.exception("broker.resolve_failed")
            self._good_until = max(self._good_until, item.at)

    async def _resolve(self, note: dict[str, Any]) -> None:
        own = note.get("origin") == self._origin
        if own and not any(self._subscribers.get(topic) for topic in note["topics"]):
            return  # its listeners were told at the commit, and nobody subscribes
        message: Job | JobEvent | TokenRevoked | PoolChanged | JobRemoved | None
        if "revoked" in note:
            message = TokenRevoked(note["revoked"])
        elif "removed" in note:
            message = JobRemoved(note["removed"])
        elif "pool" in note:
            message = PoolChanged(note["pool"])
        elif "snapshot" in note:
            message = Job.from_dict(note["snapshot"])
        else:
            async with self.db.reader() as session:
                if "event" in note:
                    message = await EventRepository(session).get(note["job"], note["event"])
                else:
                    message = await JobRepository(session).get(note["job"])
        if message is None:
            return
        if own:  # listeners were told at the commit
            for topic in note["topics"]:
                self._tell_subscribers(topic, message)
        else:
            self._deliver_all(tuple(note["topics"]), message)

    async def _resync_retrying(self, since: datetime) -> None:
        async for attempt in _retrying("broker.resync_retry"):
            with attempt:
                await self._resync(since - RESYNC_MARGIN)

    async def _resync(self, since: datetime) -> None:
        """Re-send what this replica's subscribers may have missed since `since`: each
        watched job as it is now, its recent events, every recently changed job."""
        started = utcnow()
        topics = list(self._subscribers)
        watched = {t.split(":", 1)[1] for t in topics if t.startswith(("job:", "events:"))}
        async with self.db.reader() as session:
            jobs = JobRepository(session)
            current = [job for job_id in sorted(watched) if (job := await jobs.get(job_id))]
            events = {
                job_id: await EventRepository(session).list(job_id, visible_to=None, since=since)
                for job_id in sorted(watched) if events_topic(job_id) in self._subscribers
            }
            changed = await jobs.changed_since(since) if ALL_JOBS_TOPIC in topics else []
        # Events first: a final status ends an events subscription.
        for job_id, items in events.items():
            for event in items:
                self.deliver(events_topic(job_id), event)
        for job in current:
            self.deliver(job_topic(job.job_id), job)
        for job in changed:
            self.deliver(ALL_JOBS_TOPIC, job)
        for callback in self._resync_callbacks:
            callback()
        self._good_until = max(self._good_until, started)
        self._hearing = True
        log.info("broker.resynced", since=since.isoformat(), jobs=len(current), changed=len(changed))


def _payload(topics: tuple[str, ...], message: Any, *, origin: str | None = None) -> str:
    """One notification for all the topics of a change (`origin`: the process that made
    it within a transaction and told its own listeners at the commit)."""
    if isinstance(message, Job):
        note = {"topics": topics, "job": message.job_id, "snapshot": message.to_dict()}
    elif isinstance(message, JobEvent):
        note = {"topics": topics, "job": message.job_id, "event": message.key}
    elif isinstance(message, TokenRevoked):
        note = {"topics": topics, "revoked": message.token_id}
    elif isinstance(message, PoolChanged):
        note = {"topics": topics, "pool": message.pool_id}
    elif isinstance(message, JobRemoved):
        note = {"topics": topics, "removed": message.job_id}
    else:
        raise TypeError(f"cannot publish {type(message).__name__} across replicas")
    if origin is not None:
        note["origin"] = origin
    payload = json.dumps(note)
    if len(payload.encode()) > MAX_PAYLOAD:
        note.pop("snapshot")
        payload = json.dumps(note)
    return payload


def revocation_payload(token_id: str) -> str:
    """The notification of a revoked token, sent in the revoking transaction itself (the
    `jobgraph token revoke` command runs no broker)."""
    return _payload((TOKENS_TOPIC,), TokenRevoked(token_id))


def _before_ping() -> datetime:
    return utcnow() - timedelta(seconds=PING_SECONDS)


def _retrying(what: str, *errors: type[BaseException]) -> AsyncRetrying:
    """Retried while the database is away, with exponential backoff and full jitter."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(what, attempt=state.attempt_number, error=str(error)[:200])

    return AsyncRetrying(
        retry=retry_if_exception_type(errors or (DatabaseUnavailable,)),
        wait=wait_random_exponential(multiplier=0.2, max=RECONNECT_MAX_SECONDS),
        before_sleep=waiting,
        reraise=True,
    )
