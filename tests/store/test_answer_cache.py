"""The core's AnswerCache: answers are dropped by the broker's changes to what they were
read from, a read that raced a change is not kept, memory is bounded, and nothing is
answered while the broker may be missing changes. With PostgreSQL, a change committed
through one broker reaches the cache of another (two servers), and the committing
server's own cache is told at the commit, before the notification's round trip."""

from __future__ import annotations

import asyncio

import pytest

from app.core.answers import RECENT_CHANGES, AnswerCache, Reads
from app.core.broker import ALL_EVENTS_TOPIC, ALL_JOBS_TOPIC, REMOVED_JOBS_TOPIC, Broker
from app.core.pg_broker import PostgresBroker
from app.domain.jobs import JobEvent, JobRemoved, JobStatus
from tests.conftest import PG_BASE_URL
from tests.store.test_repositories import add, make_job


class SwitchableBroker(Broker):
    """The in-process broker, with its hearing switchable and a resync on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = True

    @property
    def hearing(self) -> bool:
        return self.listening

    def resync(self) -> None:
        for callback in self._resync_callbacks:
            callback()


def reads(*job_ids: str, every_job: bool = False) -> Reads:
    found = Reads(every_job=every_job)
    for job_id in job_ids:
        found.job(job_id)
    return found


def put(cache: AnswerCache, key: str, *job_ids: str, every_job: bool = False) -> bool:
    return cache.put(key, key.encode(), size=len(key), reads=reads(*job_ids, every_job=every_job),
                     begun=cache.begin())


def test_a_change_drops_the_answers_read_from_that_job_and_every_list():
    broker = SwitchableBroker()
    cache = AnswerCache(broker, max_bytes=1 << 20)
    assert put(cache, "a", "j-a") and put(cache, "b", "j-b") and put(cache, "list", every_job=True)
    assert cache.get("a") == b"a" and cache.get("list") == b"list"
    broker.deliver(ALL_JOBS_TOPIC, make_job("j-a"))
    assert cache.get("a") is None and cache.get("list") is None
    assert cache.get("b") == b"b"
    # An event of a job, and its deletion, count as changes too.
    broker.deliver(ALL_EVENTS_TOPIC, JobEvent(job_id="j-b", reason="Started", message="go"))
    assert cache.get("b") is None
    assert put(cache, "b", "j-b")
    broker.deliver(REMOVED_JOBS_TOPIC, JobRemoved("j-b"))
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (3, 4)


def test_a_read_that_raced_a_change_of_its_job_is_not_kept():
    broker = SwitchableBroker()
    cache = AnswerCache(broker, max_bytes=1 << 20)
    begun = cache.begin()
    broker.deliver(ALL_JOBS_TOPIC, make_job("j-a"))
    assert not cache.put("a", b"old", size=3, reads=reads("j-a"), begun=begun)
    assert cache.get("a") is None
    # Another job's change does not make it stale; a list, which reads every job, is.
    begun = cache.begin()
    broker.deliver(ALL_JOBS_TOPIC, make_job("j-other"))
    assert cache.put("a", b"fresh", size=5, reads=reads("j-a"), begun=begun)
    assert not cache.put("list", b"old", size=3, reads=reads(every_job=True), begun=begun)
    # Once the changes since a read are too many to remember, it is not kept either.
    begun = cache.begin()
    for i in range(RECENT_CHANGES + 1):
        broker.deliver(ALL_JOBS_TOPIC, make_job(f"j-{i}"))
    assert not cache.put("b", b"old", size=3, reads=reads("j-unrelated"), begun=begun)


def test_answers_read_from_no_job_are_not_kept():
    cache = AnswerCache(SwitchableBroker(), max_bytes=1 << 20)
    assert not put(cache, "nothing")  # no change would ever drop it


def test_memory_is_bounded_least_recently_used_first():
    cache = AnswerCache(SwitchableBroker(), max_bytes=8000)
    for i in range(10):
        assert cache.put(f"k{i}", b"x" * 900, size=900, reads=reads(f"j-{i}"), begun=cache.begin())
        cache.get("k0")  # kept in use
    assert cache.size_bytes <= 8000
    assert cache.get("k0") is not None and cache.get("k1") is None
    # One answer larger than an eighth of the cache is not kept at all.
    assert not cache.put("big", b"x" * 1001, size=1001, reads=reads("j-big"), begun=cache.begin())
    assert not AnswerCache(SwitchableBroker(), max_bytes=0).put(
        "any", b"x", size=1, reads=reads("j-a"), begun=0
    )


def test_nothing_is_answered_while_the_broker_may_miss_changes_and_all_goes_on_resync():
    broker = SwitchableBroker()
    cache = AnswerCache(broker, max_bytes=1 << 20)
    assert put(cache, "a", "j-a")
    broker.listening = False
    assert cache.get("a") is None
    assert not put(cache, "b", "j-b")
    begun = cache.begin()
    broker.resync()  # what was missed has been re-read
    broker.listening = True
    assert cache.get("a") is None and len(cache) == 0
    assert not cache.put("c", b"c", size=1, reads=reads("j-c"), begun=begun)
    assert put(cache, "c", "j-c") and cache.get("c") == b"c"


@pytest.mark.skipif(not PG_BASE_URL, reason="LISTEN/NOTIFY needs PostgreSQL (CI runs it)")
async def test_a_commit_drops_answers_on_its_own_server_at_once_and_on_others_by_notify(db):
    job = make_job("j-kept", status=JobStatus.RUNNING)
    await add(db, job)
    one, two = PostgresBroker(db), PostgresBroker(db)
    await one.start()
    await two.start()
    try:
        here, there = AnswerCache(one, max_bytes=1 << 20), AnswerCache(two, max_bytes=1 << 20)
        assert put(here, "a", "j-kept") and put(there, "a", "j-kept")
        async with db.transaction() as session:
            await one.publish_job(job, within=session)
        assert here.get("a") is None  # at the commit: no round trip to wait for
        async with asyncio.timeout(10):
            while there.get("a") is not None:
                await asyncio.sleep(0.01)
        # A deletion travels too.
        assert put(here, "a", "j-kept") and put(there, "a", "j-kept")
        async with db.transaction() as session:
            await one.publish_job_removed("j-kept", within=session)
        assert here.get("a") is None
        async with asyncio.timeout(10):
            while there.get("a") is not None:
                await asyncio.sleep(0.01)
        # A lost listening connection: nothing answered until the resync.
        assert put(there, "a", "j-kept")
        two._lost.set()
        assert not two.hearing and there.get("a") is None
    finally:
        await one.close()
        await two.close()
