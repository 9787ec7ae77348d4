"""Repositories against a real database (the same tests on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from app.domain.jobs import EventType, Job, JobEvent, JobSpec, JobStatus, Pod, PodPhase
from app.domain.listing import Audience, JobCursor, JobFilter, PageRequest
from app.domain.tokens import TokenInfo
from app.store.events import EventRepository
from app.store.jobs import JobRepository, PodRepository
from app.store.tokens import TokenRepository

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_job(job_id: str, *, owner="alice", name="train", minutes=0, status=JobStatus.PENDING, queue="default", key=None) -> Job:
    spec = JobSpec(name=name, command=("python", "train.py"), resource_pool_id="local", queue=queue)
    return Job(job_id=job_id, owner=owner, spec=spec, status=status,
               created_at=T0 + timedelta(minutes=minutes), idempotency_key=key)


async def add(db, *jobs: Job) -> None:
    async with db.transaction() as session:
        for job in jobs:
            await JobRepository(session).add(job)


async def test_job_round_trip_keeps_spec_and_utc_times(db):
    job = make_job("j-round", name="训练 ünïcode")
    await add(db, job)
    async with db.reader() as session:
        loaded = await JobRepository(session).get("j-round")
    assert loaded.spec == job.spec
    assert loaded.created_at == job.created_at and loaded.created_at.tzinfo is not None
    assert loaded.status is JobStatus.PENDING


async def test_listing_filters_orders_and_pages(db):
    await add(
        db,
        make_job("j-a1", minutes=1, name="resnet sweep"),
        make_job("j-a2", minutes=2, status=JobStatus.RUNNING, queue="high"),
        make_job("j-a3", minutes=3, name="bert 50%_off"),
        make_job("j-b1", minutes=4, owner="bob"),
    )
    async with db.reader() as session:
        repo = JobRepository(session)
        everything = await repo.list(job_filter=JobFilter(), page=PageRequest(first=10), visible_to=None)
        assert [j.job_id for j in everything.jobs] == ["j-b1", "j-a3", "j-a2", "j-a1"]
        mine = await repo.list(job_filter=JobFilter(), page=PageRequest(first=2), visible_to=Audience("alice"))
        assert [j.job_id for j in mine.jobs] == ["j-a3", "j-a2"] and mine.has_next_page
        rest = await repo.list(
            job_filter=JobFilter(), page=PageRequest(first=2, after=JobCursor.of(mine.jobs[-1])), visible_to=Audience("alice")
        )
        assert [j.job_id for j in rest.jobs] == ["j-a1"] and not rest.has_next_page
        assert await repo.count(job_filter=JobFilter(), visible_to=Audience("alice")) == 3
        running = JobFilter(statuses=(JobStatus.RUNNING,))
        assert [j.job_id for j in (await repo.list(job_filter=running, page=PageRequest(), visible_to=None)).jobs] == ["j-a2"]
        assert await repo.count(job_filter=JobFilter(queue="high"), visible_to=None) == 1
        assert await repo.count(job_filter=JobFilter(keyword="RESNET"), visible_to=None) == 1
        assert await repo.count(job_filter=JobFilter(keyword="j-a"), visible_to=None) == 3
        assert await repo.count(job_filter=JobFilter(keyword="%_"), visible_to=None) == 1
        assert await repo.count(job_filter=JobFilter(owner="bob"), visible_to=Audience("alice")) == 0
        active = await repo.list_active(pool_id="local")
        assert {j.job_id for j in active} == {"j-a1", "j-a2", "j-a3", "j-b1"}


async def test_idempotency_key_is_unique_per_owner(db):
    await add(db, make_job("j-k1", key="k"), make_job("j-k2", owner="bob", key="k"))
    with pytest.raises(IntegrityError):
        await add(db, make_job("j-k3", key="k"))
    async with db.reader() as session:
        found = await JobRepository(session).get_by_idempotency_key(owner="alice", key="k")
    assert found.job_id == "j-k1"


async def test_mark_stopping_never_overwrites_a_final_status(db):
    await add(db, make_job("j-s1", status=JobStatus.RUNNING), make_job("j-s2", status=JobStatus.SUCCEEDED))
    async with db.transaction() as session:
        repo = JobRepository(session)
        assert await repo.mark_stopping("j-s1") is True
        assert await repo.mark_stopping("j-s2") is False
    async with db.reader() as session:
        repo = JobRepository(session)
        assert (await repo.get("j-s1")).status is JobStatus.STOPPING
        assert (await repo.get("j-s2")).status is JobStatus.SUCCEEDED


async def test_many_events_at_once_go_in_pages_and_only_the_new_ones_are_answered(db):
    """More rows than one multi-row INSERT carries (SQLAlchemy's insertmanyvalues pages),
    with a repeated key within the call and keys seen before."""
    await add(db, make_job("j-many"))
    events = [JobEvent(job_id="j-many", reason=f"R{n}", message="m" * n, key=f"k{n}",
                       timestamp=T0 + timedelta(seconds=n)) for n in range(2500)]
    async with db.transaction() as session:
        assert await EventRepository(session).add_new(events[:1200] + events[:3]) == events[:1200]
    async with db.transaction() as session:
        assert await EventRepository(session).add_new(events) == events[1200:]
    async with db.reader() as session:
        stored = await EventRepository(session).list("j-many", visible_to=None)
    assert [(e.key, e.timestamp) for e in stored] == [(e.key, e.timestamp) for e in events]


async def test_pods_and_events_are_stored_once_and_go_with_the_job(db):
    await add(db, make_job("j-p1"), make_job("j-p2"))
    pods = [Pod(job_id="j-p1", name=f"j-p1-{i}", replica_index=i, phase=PodPhase.RUNNING) for i in range(2)]
    event = JobEvent(job_id="j-p1", reason="Started", message="go", key="e1", timestamp=T0)
    async with db.transaction() as session:
        await PodRepository(session).replace("j-p1", pods)
        assert await EventRepository(session).add_new([event]) == [event]
    async with db.transaction() as session:
        # Seen again (a runtime replaying history): stored once.
        assert await EventRepository(session).add_new([event]) == []
        later = JobEvent(job_id="j-p1", reason="Completed", message="done", key="e2",
                         type=EventType.WARNING, timestamp=T0 + timedelta(seconds=5))
        await EventRepository(session).add_new([later])
    async with db.reader() as session:
        by_job = await PodRepository(session).for_jobs(["j-p1", "j-p2"], visible_to=None)
        assert [p.name for p in by_job["j-p1"]] == ["j-p1-0", "j-p1-1"] and by_job["j-p2"] == []
        events = await EventRepository(session).list("j-p1", visible_to=None)
        assert [e.reason for e in events] == ["Started", "Completed"]
        window = await EventRepository(session).list(
            "j-p1", visible_to=None, since=T0 + timedelta(seconds=1)
        )
        assert [e.reason for e in window] == ["Completed"]
    async with db.transaction() as session:
        await JobRepository(session).delete("j-p1")
    async with db.reader() as session:
        assert await JobRepository(session).get("j-p1") is None
        assert (await PodRepository(session).for_jobs(["j-p1"], visible_to=None))["j-p1"] == []
        assert await EventRepository(session).list("j-p1", visible_to=None) == []


async def test_shared_jobs_are_visible_to_the_groups_they_are_shared_with(db):
    shared = make_job("j-sh1", owner="bob")
    shared.shared_with = ("nlp",)
    await add(db, shared, make_job("j-sh2", owner="bob"), make_job("j-sh3", owner="carol"))
    async with db.transaction() as session:
        await JobRepository(session).set_shares("j-sh3", ("vision", "nlp"))
    async with db.reader() as session:
        repo = JobRepository(session)
        nlp_member = Audience("alice", ("nlp",))
        listed = await repo.list(job_filter=JobFilter(), page=PageRequest(), visible_to=nlp_member)
        assert [j.job_id for j in listed.jobs] == ["j-sh3", "j-sh1"]
        assert await repo.count(job_filter=JobFilter(), visible_to=Audience("alice", ("ops",))) == 0
        assert (await repo.get("j-sh3")).shared_with == ("vision", "nlp")


async def test_reads_on_a_callers_behalf_carry_readability_in_the_query(db):
    shared = make_job("j-rd1", owner="bob")
    shared.shared_with = ("nlp",)
    await add(db, shared, make_job("j-rd2", owner="bob"))
    pod = Pod(job_id="j-rd1", name="j-rd1-0", replica_index=0, phase=PodPhase.RUNNING)
    events = [JobEvent(job_id=job_id, reason="Started", message="", key="e1", type=EventType.NORMAL,
                       timestamp=T0) for job_id in ("j-rd1", "j-rd2")]
    async with db.transaction() as session:
        for job_id in ("j-rd1", "j-rd2"):
            await PodRepository(session).replace(job_id, [Pod(
                job_id=job_id, name=f"{job_id}-0", replica_index=0, phase=PodPhase.RUNNING)])
        await EventRepository(session).add_new(events)
    stranger, member, owner = Audience("alice"), Audience("alice", ("nlp",)), Audience("bob")
    async with db.reader() as session:
        jobs, pods, evts = JobRepository(session), PodRepository(session), EventRepository(session)
        assert await jobs.get_readable("j-rd1", visible_to=stranger) is None
        job, job_pods = await jobs.get_readable("j-rd1", visible_to=member, with_pods=True)
        assert job.job_id == "j-rd1" and job_pods == [pod]
        assert await jobs.get_readable("j-rd2", visible_to=member) is None
        assert (await jobs.get_readable("j-rd2", visible_to=None))[0].owner == "bob"
        by_job = await pods.for_jobs(["j-rd1", "j-rd2"], visible_to=member)
        assert [p.name for p in by_job["j-rd1"]] == ["j-rd1-0"] and by_job["j-rd2"] == []
        assert len((await pods.for_jobs(["j-rd2"], visible_to=owner))["j-rd2"]) == 1
        assert await pods.readable_pod("j-rd2", "j-rd2-0", visible_to=member) is None
        assert await pods.readable_pod("j-rd1", "../../etc/passwd", visible_to=member) is None
        assert (await pods.readable_pod("j-rd1", "j-rd1-0", visible_to=member))[0] == "local"
        seen = await evts.for_jobs(["j-rd1", "j-rd2"], visible_to=member)
        assert len(seen["j-rd1"]) == 1 and seen["j-rd2"] == []
        assert await evts.list("j-rd2", visible_to=stranger) == []


async def test_events_are_added_in_batches_and_each_key_once(db):
    await add(db, make_job("j-ev1"))
    def event(key: str, seconds: int) -> JobEvent:
        return JobEvent(job_id="j-ev1", reason="Tick", message=key, key=key,
                        type=EventType.NORMAL, timestamp=T0 + timedelta(seconds=seconds))
    many = [event(f"k{i}", i) for i in range(1200)]  # more than one INSERT's batch
    async with db.transaction() as session:
        added = await EventRepository(session).add_new([*many[:600], many[0]])
        assert [e.key for e in added] == [f"k{i}" for i in range(600)]
    async with db.transaction() as session:
        added = await EventRepository(session).add_new(many)
        assert [e.key for e in added] == [f"k{i}" for i in range(600, 1200)]
    async with db.reader() as session:
        stored = await EventRepository(session).list("j-ev1", visible_to=None)
        assert len(stored) == 1200 and stored[0].key == "k0"


async def test_expired_tokens_of_one_kind_are_deleted(db):
    now = datetime.now(UTC)

    def token(token_id: str, expired_ago: timedelta | None) -> TokenInfo:
        expires = now - expired_ago if expired_ago is not None else None
        return TokenInfo(id=token_id, user="u", is_admin=False, groups=(), created_at=now - timedelta(days=30),
                         expires_at=expires)

    tokens = [
        token("s-long-over", timedelta(days=2)), token("s-just-over", timedelta(hours=1)),
        token("s-live", -timedelta(hours=1)), token("t-long-over", timedelta(days=2)),
        token("t-forever", None),
    ]
    async with db.transaction() as session:
        for item in tokens:
            await TokenRepository(session).add(item, token_hash=item.id)
    async with db.transaction() as session:
        deleted = await TokenRepository(session).delete_expired(id_prefix="s-", before=now - timedelta(days=1))
    assert deleted == 1
    async with db.reader() as session:
        left = {t.id for t in await TokenRepository(session).list()}
    assert left == {"s-just-over", "s-live", "t-long-over", "t-forever"}
