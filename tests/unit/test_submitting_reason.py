"""SUBMITTING means recorded but not yet accepted by the runtime: the first word from the
runtime about the job ends it, whether or not that word carries a reason of its own."""

from __future__ import annotations

from app.core.sync import merge
from app.domain.jobs import Job, JobSpec, JobStatus, PendingReason
from app.domain.queueing import SUBMITTING, SUBMITTING_MESSAGE, WAITING_FOR_SLOT
from app.runtime.base import JobUpdate


def submitted() -> Job:
    spec = JobSpec(name="n", command=("true",), resource_pool_id="local", queue="default")
    return Job(job_id="j-sub", owner="alice", spec=spec,
               pending_reason=PendingReason(SUBMITTING, SUBMITTING_MESSAGE))


def test_an_update_without_a_reason_ends_submitting() -> None:
    after = merge(submitted(), JobUpdate(job_id="j-sub", status=JobStatus.QUEUED))
    assert after.status is JobStatus.QUEUED and after.pending_reason is None


def test_a_reported_reason_replaces_submitting() -> None:
    slot = PendingReason(WAITING_FOR_SLOT, "1 of 1 slot(s) are taken")
    after = merge(submitted(), JobUpdate(job_id="j-sub", status=JobStatus.QUEUED, pending_reason=slot))
    assert after.pending_reason == slot


def test_another_reason_is_kept_by_an_update_without_one() -> None:
    held = PendingReason("HELD", "held")
    job = merge(submitted(), JobUpdate(job_id="j-sub", status=JobStatus.QUEUED, pending_reason=held))
    assert merge(job, JobUpdate(job_id="j-sub", status=JobStatus.QUEUED)).pending_reason == held
