"""Usage SQL against a real database (SQLite, and PostgreSQL with
JOBGRAPH_TEST_DATABASE_URL): recorded times chosen so that every clipping rule shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.errors import ValidationFailed
from app.domain.jobs import Job, JobSpec, JobStatus, Pod, PodPhase, Resources
from app.domain.usage import PoolUsage, UsageGroupBy, UsageWindow
from app.store.jobs import JobRepository, PodRepository
from app.store.usage import UsageRepository

# Midnight (UTC) falls 300 s after T0: a window from T0 spans two days.
T0 = datetime(2026, 1, 1, 23, 55, tzinfo=UTC)
NOW = T0 + timedelta(seconds=1000)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(job_id: str, *, owner: str, created: float, queue: str = "default", pool: str = "local",
        replicas: int = 1, gpu: int = 0, cpus: float | None = None, memory: float | None = None) -> Job:
    spec = JobSpec(
        name=job_id, command=("true",), resource_pool_id=pool, queue=queue, replicas=replicas,
        resources=Resources(cpus=cpus, memory_gib=memory, gpu=gpu),
    )
    return Job(job_id=job_id, owner=owner, spec=spec, created_at=at(created))


def pod(job_id: str, index: int, started: float | None, finished: float | None) -> Pod:
    return Pod(
        job_id=job_id, name=f"{job_id}-{index}", replica_index=index,
        phase=PodPhase.SUCCEEDED if finished is not None else PodPhase.RUNNING,
        started_at=at(started) if started is not None else None,
        finished_at=at(finished) if finished is not None else None,
    )


async def record(db, item: Job, *, status: JobStatus, started: float | None = None,
                 finished: float | None = None, pods: tuple[Pod, ...] = (), held: bool = False) -> None:
    async with db.transaction() as session:
        jobs = JobRepository(session)
        await jobs.add(replace(item, held=held))
        await jobs.save_state(replace(
            item, status=status,
            started_at=at(started) if started is not None else None,
            finished_at=at(finished) if finished is not None else None,
        ))
        await PodRepository(session).replace(item.job_id, pods)


@pytest.fixture
async def history(db):
    # alice: 2 replicas × (1 GPU, 2 CPUs); replica 0 runs 60..360, replica 1 70..300.
    await record(
        db, job("j-one", owner="alice", created=0, replicas=2, gpu=1, cpus=2),
        status=JobStatus.SUCCEEDED, started=60, finished=360,
        pods=(pod("j-one", 0, 60, 360), pod("j-one", 1, 70, 300)),
    )
    # bob: 2 GPUs, no CPUs asked, still running since 200 (now is 1000).
    await record(
        db, job("j-two", owner="bob", created=100, queue="high", gpu=2),
        status=JobStatus.RUNNING, started=200, pods=(pod("j-two", 0, 200, None),),
    )
    # alice: failed at 150 without ever starting.
    await record(db, job("j-three", owner="alice", created=50, gpu=4), status=JobStatus.FAILED, finished=150)
    # alice, a day before: outside every window below.
    await record(
        db, job("j-old", owner="alice", created=-90_000, gpu=1), status=JobStatus.SUCCEEDED,
        started=-89_000, finished=-88_000, pods=(pod("j-old", 0, -89_000, -88_000),),
    )
    return db


async def rows(db, group_by: UsageGroupBy, since: float = 0, until: float = 1000, **kwargs):
    window = UsageWindow(since=at(since), until=at(until))
    async with db.reader() as session:
        found = await UsageRepository(session).rows(window=window, group_by=group_by, now=NOW, **kwargs)
    return {row.key: row for row in found}


async def test_rows_by_owner_add_up_the_replicas_recorded_times(history):
    by_owner = await rows(history, UsageGroupBy.OWNER)
    assert set(by_owner) == {"alice", "bob"}
    alice, bob = by_owner["alice"], by_owner["bob"]
    assert (alice.jobs, alice.succeeded, alice.failed) == (2, 1, 1)
    assert alice.gpu_seconds == pytest.approx(1 * (300 + 230))
    assert alice.cpu_seconds == pytest.approx(2 * (300 + 230))
    assert alice.wall_seconds == pytest.approx(300)  # j-three never ran
    assert alice.queue_seconds == pytest.approx(60 + 100)  # j-three waited until it failed
    # Running: counted until now; no CPUs asked, none counted.
    assert (bob.jobs, bob.succeeded, bob.failed) == (1, 0, 0)
    assert bob.gpu_seconds == pytest.approx(2 * 800)
    assert bob.cpu_seconds == 0 and bob.wall_seconds == pytest.approx(800)
    assert bob.queue_seconds == pytest.approx(100)


async def test_rows_are_clipped_to_the_window_and_adjacent_windows_add_up(history):
    middle = (await rows(history, UsageGroupBy.POOL, since=100, until=300))["local"]
    assert middle.gpu_seconds == pytest.approx(1 * (200 + 200) + 2 * 100)
    assert middle.wall_seconds == pytest.approx(200 + 100)
    assert middle.queue_seconds == pytest.approx(0 + 100 + 50)
    assert (middle.jobs, middle.succeeded, middle.failed) == (3, 0, 1)
    before = (await rows(history, UsageGroupBy.POOL, since=0, until=100))["local"]
    after = (await rows(history, UsageGroupBy.POOL, since=300, until=1000))["local"]
    whole = (await rows(history, UsageGroupBy.POOL))["local"]
    for field in ("gpu_seconds", "cpu_seconds", "wall_seconds", "queue_seconds"):
        parts = getattr(before, field) + getattr(middle, field) + getattr(after, field)
        assert parts == pytest.approx(getattr(whole, field)), field
    assert before.succeeded + middle.succeeded + after.succeeded == whole.succeeded == 1


async def test_rows_by_queue_name_the_pool_too(history):
    by_queue = await rows(history, UsageGroupBy.QUEUE)
    assert list(by_queue) == ["local/default", "local/high"]
    assert by_queue["local/high"].gpu_seconds == pytest.approx(1600)
    assert by_queue["local/default"].jobs == 2


async def test_rows_by_day_split_a_job_at_midnight(history):
    by_day = await rows(history, UsageGroupBy.DAY)
    assert list(by_day) == ["2026-01-01", "2026-01-02"]
    first, second = by_day["2026-01-01"], by_day["2026-01-02"]
    assert first.gpu_seconds == pytest.approx((240 + 230) + 2 * 100)
    assert second.gpu_seconds == pytest.approx(60 + 2 * 700)
    assert (first.jobs, second.jobs) == (3, 2)  # j-three ended before midnight
    assert (first.succeeded, second.succeeded) == (0, 1)
    assert first.gpu_seconds + second.gpu_seconds == pytest.approx(530 + 1600)


async def test_rows_filter_by_owner_and_pool(history):
    assert list(await rows(history, UsageGroupBy.OWNER, owner="bob")) == ["bob"]
    assert await rows(history, UsageGroupBy.OWNER, pool_id="elsewhere") == {}


async def test_a_job_uses_over_its_life_what_the_rows_count(history):
    async with history.reader() as session:
        usage = UsageRepository(session)
        assert await usage.job_seconds("j-one", now=NOW) == pytest.approx((530, 1060))
        assert await usage.job_seconds("j-two", now=NOW) == pytest.approx((1600, 0))
        assert await usage.job_seconds("j-missing", now=NOW) == (0.0, 0.0)


async def test_pools_now_count_running_queued_and_held_jobs(db):
    await record(
        db, job("j-run", owner="alice", created=0, replicas=2, gpu=1, cpus=2, memory=4),
        status=JobStatus.RUNNING, started=10, pods=(pod("j-run", 0, 10, None), pod("j-run", 1, 10, None)),
    )
    await record(db, job("j-stop", owner="bob", created=0, gpu=1, cpus=1.5), status=JobStatus.STOPPING, started=5)
    await record(db, job("j-wait", owner="bob", created=1, gpu=8), status=JobStatus.QUEUED)
    await record(db, job("j-new", owner="bob", created=2), status=JobStatus.PENDING)
    await record(db, job("j-held", owner="alice", created=3), status=JobStatus.QUEUED, held=True)
    await record(db, job("j-quit", owner="alice", created=4, gpu=1), status=JobStatus.STOPPING)  # never started
    await record(db, job("j-done", owner="alice", created=0, gpu=1), status=JobStatus.SUCCEEDED, finished=9)
    await record(db, job("j-solo", owner="alice", created=0, pool="solo", gpu=1), status=JobStatus.RUNNING, started=1)
    async with db.reader() as session:
        found = await UsageRepository(session).pools_now([("local", 4), ("solo", None), ("idle", 2)])
    assert found["local"] == PoolUsage(
        pool_id="local", running_jobs=2, queued_jobs=2, held_jobs=1, gpus_in_use=3,
        cpus_in_use=5.5, memory_in_use=8.0, slots_total=4,
    )
    assert found["local"].slots_in_use == 2
    assert found["solo"] == PoolUsage(pool_id="solo", running_jobs=1, gpus_in_use=1)
    assert found["idle"] == PoolUsage(pool_id="idle", slots_total=2)


def test_a_window_must_not_end_before_it_starts_nor_be_too_long():
    with pytest.raises(ValidationFailed, match="must not be after"):
        UsageWindow.of(since=at(10), until=at(0), now=NOW)
    with pytest.raises(ValidationFailed, match="longer than 366 days"):
        UsageWindow.of(since=at(0) - timedelta(days=400), until=at(0), now=NOW)
    default = UsageWindow.of(since=None, until=None, now=NOW)
    assert default.until == NOW and default.until - default.since == timedelta(days=30)
