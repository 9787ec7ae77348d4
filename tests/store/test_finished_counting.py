"""The sync tells the usage counters of a job's end once: not again when the same final
update comes twice (a runtime replaying its history, a retried update) or from two
servers at once (PostgreSQL's row lock), and never for a transaction that rolled back."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.core.broker import Broker
from app.core.sync import RuntimeSync
from app.domain.jobs import Job, JobSpec, JobStatus, Pod, PodPhase, Resources
from app.domain.usage import FinishedJob
from app.runtime.base import JobUpdate
from app.store.jobs import JobRepository, PodRepository

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def running_job(db, job_id: str) -> Job:
    spec = JobSpec(
        name=job_id, command=("true",), resource_pool_id="local", queue="default", replicas=2,
        resources=Resources(cpus=4, gpu=2),
    )
    job = Job(job_id=job_id, owner="alice", spec=spec, created_at=T0)
    async with db.transaction() as session:
        await JobRepository(session).add(job)
        await JobRepository(session).save_state(replace(job, status=JobStatus.RUNNING, started_at=at(10)))
    return job


def final_update(job_id: str) -> JobUpdate:
    pods = tuple(
        Pod(job_id=job_id, name=f"{job_id}-{i}", replica_index=i, phase=PodPhase.SUCCEEDED,
            started_at=at(10), finished_at=at(100 + 10 * i))
        for i in range(2)
    )
    return JobUpdate(job_id=job_id, status=JobStatus.SUCCEEDED, exit_code=0, finished_at=at(120), pods=pods)


async def test_a_final_status_is_counted_once_with_what_the_replicas_used(db):
    counted: list[FinishedJob] = []
    sync = RuntimeSync(db=db, broker=Broker(), on_finished=counted.append)
    await running_job(db, "j-once")
    await sync.apply(final_update("j-once"))
    await sync.apply(final_update("j-once"))  # the same end reported again
    assert counted == [FinishedJob(
        pool_id="local", queue="default", owner="alice", status="SUCCEEDED",
        gpu_seconds=pytest.approx(2 * (90 + 100)), cpu_seconds=pytest.approx(4 * (90 + 100)),
    )]


async def test_two_servers_ending_a_job_at_once_count_it_once(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several servers share a database on PostgreSQL only (SQLite: one server)")
    counted: list[FinishedJob] = []
    one = RuntimeSync(db=db, broker=Broker(), on_finished=counted.append)
    two = RuntimeSync(db=db, broker=Broker(), on_finished=counted.append)
    await running_job(db, "j-race")
    await asyncio.gather(one.apply(final_update("j-race")), two.apply(final_update("j-race")))
    assert len(counted) == 1


class _FailingBroker(Broker):
    async def publish_job(self, job, *, within) -> None:  # the last step of the transaction
        raise RuntimeError("publishing failed: the transaction rolls back")


async def test_an_end_that_rolled_back_is_not_counted(db):
    counted: list[FinishedJob] = []
    failing = RuntimeSync(db=db, broker=_FailingBroker(), on_finished=counted.append)
    await running_job(db, "j-back")
    with pytest.raises(RuntimeError):
        await failing.apply(final_update("j-back"))
    assert counted == []
    async with db.reader() as session:
        assert (await JobRepository(session).get("j-back")).status is JobStatus.RUNNING
        assert (await PodRepository(session).for_jobs(["j-back"], visible_to=None))["j-back"] == []
    sync = RuntimeSync(db=db, broker=Broker(), on_finished=counted.append)
    await sync.apply(final_update("j-back"))  # retried: now it ends, and is counted
    assert [c.status for c in counted] == ["SUCCEEDED"]
