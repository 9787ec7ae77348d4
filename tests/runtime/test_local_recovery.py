"""The local runtime survives its server: replicas outlive `close()` and are adopted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from app.domain.jobs import JobStatus, PodPhase
from app.runtime.local.runtime import DEADLINE_REASON, LOST_REASON

from .conftest import Watcher, group_gone, process_ended, sh, wrapper_of

WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.02; done; "


def release(root: Path, job_id: str) -> None:
    (root / job_id / "workdir" / "go").touch()


async def test_running_replica_is_adopted_and_its_exit_code_learned(
    runtimes, local_root: Path
) -> None:
    rt1 = runtimes()
    await rt1.start([])
    w1 = Watcher(rt1)
    job = sh(WAIT_FOR_GO + "echo done; exit 3")
    await rt1.submit(job)
    await w1.status(job.job_id, JobStatus.RUNNING)
    keys = [e.key for u in w1.seen for e in u.events]
    wrapper = wrapper_of(local_root, job)
    await rt1.close()

    job.status = JobStatus.RUNNING
    rt2 = runtimes()
    await rt2.start([job])
    w2 = Watcher(rt2)
    snapshot = await w2.until(lambda u: u.job_id == job.job_id)
    assert snapshot.status == JobStatus.RUNNING
    assert [e.key for e in snapshot.events] == keys  # replayed with the same keys
    assert snapshot.pods and snapshot.pods[0].phase == PodPhase.RUNNING

    release(local_root, job.job_id)
    done = await w2.final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code == 3
    assert done.reason == f"replica {job.job_id}-0 exited with code 3"
    assert done.pods and done.pods[0].restart_count == 0  # the same process, not a rerun
    assert wrapper_of(local_root, job) == wrapper
    assert [line async for line in rt2.logs(
        job.job_id, f"{job.job_id}-0", tail_lines=None, follow=False)] == ["done"]
    assert await group_gone(wrapper.pid)


async def test_replica_that_ended_while_unsupervised_gets_its_recorded_code(
    runtimes, local_root: Path
) -> None:
    rt1 = runtimes()
    await rt1.start([])
    w1 = Watcher(rt1)
    job = sh(WAIT_FOR_GO + "exit 3")
    await rt1.submit(job)
    await w1.status(job.job_id, JobStatus.RUNNING)
    await rt1.close()
    release(local_root, job.job_id)
    await process_ended(wrapper_of(local_root, job).pid)

    job.status = JobStatus.RUNNING
    rt2 = runtimes()
    await rt2.start([job])
    done = await Watcher(rt2).final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code == 3
    assert done.pods and done.pods[0].exit_code == 3


async def test_vanished_replica_fails_with_a_clear_reason(runtimes, local_root: Path) -> None:
    rt1 = runtimes()
    await rt1.start([])
    w1 = Watcher(rt1)
    job = sh("sleep 60")
    await rt1.submit(job)
    await w1.status(job.job_id, JobStatus.RUNNING)
    await rt1.close()
    pid = wrapper_of(local_root, job).pid
    os.killpg(pid, signal.SIGKILL)
    await process_ended(pid)

    job.status = JobStatus.RUNNING
    rt2 = runtimes()
    await rt2.start([job])
    done = await Watcher(rt2).final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code is None
    assert done.reason == (
        f"replica {job.job_id}-0 vanished: its process (pid {pid}) ended without "
        "recording an exit code"
    )


async def test_queue_and_unknown_jobs_after_a_restart(runtimes, local_root: Path) -> None:
    rt1 = runtimes(slots=1)
    await rt1.start([])
    w1 = Watcher(rt1)
    blocker, queued = sh(WAIT_FOR_GO + "exit 0"), sh("echo queued")
    await rt1.submit(blocker)
    await rt1.submit(queued)
    await w1.status(queued.job_id, JobStatus.QUEUED)
    await w1.status(blocker.job_id, JobStatus.RUNNING)
    await rt1.close()

    lost, pending = sh("true"), sh("echo pending")
    blocker.status, queued.status, lost.status = (
        JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.RUNNING
    )
    rt2 = runtimes(slots=1)
    await rt2.start([blocker, queued, lost, pending])
    w2 = Watcher(rt2)
    gone = await w2.final(lost.job_id)
    assert gone.status == JobStatus.FAILED and gone.reason == LOST_REASON
    assert (await w2.status(queued.job_id, JobStatus.QUEUED)).events  # snapshot with history
    await w2.status(pending.job_id, JobStatus.QUEUED)  # submitted anew

    release(local_root, blocker.job_id)
    for job in (blocker, queued, pending):
        assert (await w2.final(job.job_id)).status == JobStatus.SUCCEEDED
    started = [u.job_id for u in w2.seen if u.status == JobStatus.RUNNING and
               any(e.reason == "Started" for e in u.events) and u.job_id != blocker.job_id]
    assert started == [queued.job_id, pending.job_id]


async def test_deadline_counts_from_the_recorded_start(runtimes, local_root: Path) -> None:
    rt1 = runtimes()
    await rt1.start([])
    w1 = Watcher(rt1)
    job = sh("sleep 60", timeout_seconds=1)
    await rt1.submit(job)
    started = await w1.status(job.job_id, JobStatus.RUNNING)
    await rt1.close()

    job.status = JobStatus.RUNNING
    rt2 = runtimes()
    await rt2.start([job])
    done = await Watcher(rt2).final(job.job_id)
    assert done.status == JobStatus.FAILED and done.reason == DEADLINE_REASON
    assert started.started_at and done.started_at == started.started_at
