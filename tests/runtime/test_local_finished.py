"""A finished job leaves the supervisor's memory; its files keep serving it (logs, stop,
terminal refusal, delete), also after a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.domain.errors import Conflict, NotFound
from app.domain.jobs import JobStatus
from app.runtime.local import LocalRuntime

from .conftest import Watcher, sh


async def lines(rt: LocalRuntime, job_id: str, pod: str, *, follow: bool = False) -> list[str]:
    return [line async for line in rt.logs(job_id, pod, tail_lines=None, follow=follow)]


async def test_finished_jobs_are_not_held_and_still_served(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    jobs = [sh(f"echo out-{i}", replicas=2) for i in range(12)]
    failed = sh("echo bad; exit 3")
    for job in [*jobs, failed]:
        await rt.submit(job)
    for job in [*jobs, failed]:
        await w.final(job.job_id)
    # The final update is reported once the job has left the table.
    assert rt._supervisor.jobs == {}

    first = jobs[0]
    pod = f"{first.job_id}-1"
    assert await lines(rt, first.job_id, pod) == ["out-0"]
    assert await lines(rt, first.job_id, pod, follow=True) == ["out-0"]  # ends: it has ended
    assert await lines(rt, failed.job_id, f"{failed.job_id}-0") == ["bad"]
    with pytest.raises(NotFound):
        await lines(rt, first.job_id, f"{first.job_id}-7")
    with pytest.raises(Conflict):
        await rt.open_terminal(first.job_id, pod, rows=24, cols=80)
    await rt.stop(first.job_id)  # a finished job: nothing to stop, and not an error
    await rt.submit(first)  # submitting again does not run it again
    assert rt._supervisor.jobs == {}
    assert await lines(rt, first.job_id, pod) == ["out-0"]

    await rt.delete(first.job_id)
    assert not (local_root / first.job_id).exists()
    with pytest.raises(NotFound):
        await lines(rt, first.job_id, pod)
    with pytest.raises(NotFound):
        await rt.delete(first.job_id)
    assert [u.status for u in w.seen if u.job_id == first.job_id].count(JobStatus.SUCCEEDED) == 1


async def test_finished_jobs_are_not_held_after_a_restart(
    runtimes: Callable[..., LocalRuntime],
) -> None:
    rt = runtimes()
    await rt.start([])
    w = Watcher(rt)
    job = sh("echo kept")
    await rt.submit(job)
    await w.final(job.job_id)
    await rt.close()

    again = runtimes()
    await again.start([])
    assert again._supervisor.jobs == {}
    assert await lines(again, job.job_id, f"{job.job_id}-0") == ["kept"]
    await again.delete(job.job_id)
    with pytest.raises(NotFound):
        await again.stop(job.job_id)
