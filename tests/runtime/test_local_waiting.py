"""Waiting jobs on the local runtime: held, released, re-ordered, and why they wait."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from app.domain.errors import Conflict
from app.domain.jobs import JobStatus
from app.domain.queueing import HELD, WAITING_FOR_SLOT
from app.runtime.base import JobUpdate

from .conftest import Watcher, sh

WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.02; done; "


def go(root: Path, job_id: str) -> None:
    (root / job_id / "workdir" / "go").touch()


def started_order(w: Watcher) -> list[str]:
    return [
        u.job_id for u in w.seen
        if u.status == JobStatus.RUNNING and any(e.reason == "Started" for e in u.events)
    ]


def reason_of(update: JobUpdate) -> tuple[str, str] | None:
    r = update.pending_reason
    return (r.code, r.message) if r else None


async def test_a_held_job_is_overtaken_and_released_back_in_its_place(
    runtimes, local_root: Path
) -> None:
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    blocker = sh(WAIT_FOR_GO + "exit 0")
    first, second, third = (sh(WAIT_FOR_GO + "exit 0") for _ in range(3))
    for job in (blocker, first, second, third):
        await rt.submit(job)
    await w.status(blocker.job_id, JobStatus.RUNNING)

    await rt.hold(first)
    held = await w.until(lambda u: u.job_id == first.job_id and "Held" in [
        e.reason for e in u.events])
    assert held.status == JobStatus.QUEUED and held.pending_reason is not None
    assert held.pending_reason.code == HELD

    go(local_root, blocker.job_id)  # the slot frees: the held job is skipped
    await w.status(second.job_id, JobStatus.RUNNING)
    await rt.release(first)  # back in its place: before `third`, which came later
    await w.until(lambda u: u.job_id == first.job_id and reason_of(u) is not None
                  and u.pending_reason.code == WAITING_FOR_SLOT)  # type: ignore[union-attr]
    go(local_root, second.job_id)
    await w.status(first.job_id, JobStatus.RUNNING)
    go(local_root, first.job_id)
    await w.status(third.job_id, JobStatus.RUNNING)
    go(local_root, third.job_id)
    await w.final(third.job_id)
    assert started_order(w) == [blocker.job_id, second.job_id, first.job_id, third.job_id]
    assert "Released" in w.events(first.job_id)


async def test_a_higher_priority_moves_a_job_ahead(runtimes, local_root: Path) -> None:
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    blocker, early, late = (sh(WAIT_FOR_GO + "exit 0") for _ in range(3))
    for job in (blocker, early, late):
        await rt.submit(job)
    await w.status(late.job_id, JobStatus.QUEUED)

    await rt.reorder(replace(late, spec=replace(late.spec, priority=5, queue="high")))
    await w.until(lambda u: u.job_id == late.job_id and "Updated" in [e.reason for e in u.events])
    go(local_root, blocker.job_id)
    await w.status(late.job_id, JobStatus.RUNNING)
    go(local_root, late.job_id)
    await w.status(early.job_id, JobStatus.RUNNING)
    go(local_root, early.job_id)
    await w.final(early.job_id)
    assert started_order(w) == [blocker.job_id, late.job_id, early.job_id]


async def test_the_slot_message_follows_who_holds_the_slots(runtimes, local_root: Path) -> None:
    rt = runtimes(slots=2)
    await rt.start([])
    w = Watcher(rt)
    mine = sh(WAIT_FOR_GO + "exit 0")
    theirs = replace(sh(WAIT_FOR_GO + "exit 0"), owner="bob")
    waiting = sh("exit 0")
    urgent = replace(sh(WAIT_FOR_GO + "exit 0", priority=9), owner="bob")
    for job in (mine, theirs, waiting, urgent):
        await rt.submit(job)
    await w.status(theirs.job_id, JobStatus.RUNNING)
    first = await w.until(lambda u: u.job_id == waiting.job_id and u.pending_reason is not None)
    assert reason_of(first) == (
        WAITING_FOR_SLOT,
        "waiting for a free job slot: 2 of 2 slot(s) are taken, 1 of them by alice's own jobs",
    )
    # alice's job ends; bob's urgent one takes the slot: the message says so.
    go(local_root, mine.job_id)
    await w.status(urgent.job_id, JobStatus.RUNNING)
    now = await w.until(lambda u: u.job_id == waiting.job_id and reason_of(u) is not None
                        and "0 of them" in u.pending_reason.message)  # type: ignore[union-attr]
    assert reason_of(now) == (
        WAITING_FOR_SLOT,
        "waiting for a free job slot: 2 of 2 slot(s) are taken, 0 of them by alice's own jobs",
    )
    go(local_root, theirs.job_id)
    assert (await w.final(waiting.job_id)).status == JobStatus.SUCCEEDED
    go(local_root, urgent.job_id)
    await w.final(urgent.job_id)
    # Once it runs it no longer waits: no reason after QUEUED.
    assert all(u.pending_reason is None for u in w.seen
               if u.job_id == waiting.job_id and u.status != JobStatus.QUEUED)


async def test_only_a_waiting_job_can_be_steered(runtime) -> None:
    rt, w = runtime
    job = sh("sleep 60")
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    for act in (rt.hold, rt.release, rt.reorder):
        with pytest.raises(Conflict, match="only a waiting job"):
            await act(job)
    await rt.stop(job.job_id)
    await w.final(job.job_id)


async def test_a_hold_during_submission_applies_once_admitted(
    runtimes, local_root: Path
) -> None:
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    job = sh("exit 0")
    submitting = asyncio.create_task(rt.submit(job))
    await rt.hold(job)  # the submit has not recorded it yet
    await submitting
    queued = await w.until(lambda u: u.job_id == job.job_id and u.pending_reason is not None)
    assert queued.status == JobStatus.QUEUED and queued.pending_reason.code == HELD  # type: ignore[union-attr]
    later = sh("exit 0")
    await rt.submit(later)  # a free slot: the later job starts, the held one does not
    await w.final(later.job_id)
    assert set(w.statuses(job.job_id)) == {JobStatus.QUEUED}
    await rt.release(job)
    assert (await w.final(job.job_id)).status == JobStatus.SUCCEEDED


async def test_a_restart_keeps_what_the_database_decided(runtimes, local_root: Path) -> None:
    rt1 = runtimes(slots=1)
    await rt1.start([])
    w1 = Watcher(rt1)
    blocker, held, low, high = (sh(WAIT_FOR_GO + "exit 0") for _ in range(4))
    for job in (blocker, held, low, high):
        await rt1.submit(job)
    await w1.status(high.job_id, JobStatus.QUEUED)
    await rt1.close()

    # Decided while no server ran: `held` is held, `high` got a higher priority.
    blocker.status = JobStatus.RUNNING
    for job in (held, low, high):
        job.status = JobStatus.QUEUED
    held.held = True
    high = replace(high, spec=replace(high.spec, priority=3))
    rt2 = runtimes(slots=1)
    await rt2.start([blocker, held, low, high])
    w2 = Watcher(rt2)
    go(local_root, blocker.job_id)
    await w2.status(high.job_id, JobStatus.RUNNING)
    go(local_root, high.job_id)
    await w2.status(low.job_id, JobStatus.RUNNING)
    go(local_root, low.job_id)
    await w2.final(low.job_id)
    # (the blocker's snapshot at start replays its Started event)
    assert [j for j in started_order(w2) if j != blocker.job_id] == [high.job_id, low.job_id]
    assert JobStatus.RUNNING not in w2.statuses(held.job_id)
    await rt2.release(held)
    go(local_root, held.job_id)
    assert (await w2.final(held.job_id)).status == JobStatus.SUCCEEDED


async def test_releasing_a_job_not_held_says_again_why_it_waits(runtimes, local_root: Path) -> None:
    """The core clears the reason when it releases; a runtime that had no hold to undo
    (it missed the hold) still reports why the job waits, so the reason comes back."""
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    blocker, waiting = sh(WAIT_FOR_GO + "exit 0"), sh("exit 0")
    await rt.submit(blocker)
    await rt.submit(waiting)
    await w.until(lambda u: u.job_id == waiting.job_id and u.pending_reason is not None)
    earlier = [id(u) for u in w.seen]
    await rt.release(waiting)
    again = await w.until(lambda u: id(u) not in earlier and u.job_id == waiting.job_id)
    assert again.status == JobStatus.QUEUED and reason_of(again) is not None
    assert again.pending_reason.code == WAITING_FOR_SLOT  # type: ignore[union-attr]
    go(local_root, blocker.job_id)
    assert (await w.final(waiting.job_id)).status == JobStatus.SUCCEEDED
