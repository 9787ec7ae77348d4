"""Background tasks are supervised: one that crashes is logged and started again; a sync
update the database refuses for a while is retried until it applies, not dropped."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from app.core.supervision import supervised


async def test_a_crashed_task_is_logged_and_restarted():
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"crash {len(runs)}")

    with capture_logs() as logs:
        task = supervised("test:flaky", flaky)
        async with asyncio.timeout(30):
            await task
    assert runs == [0, 1, 2]  # two crashes, then a run that returned
    crashes = [entry for entry in logs if entry["event"] == "task.crashed"]
    assert [c["task"] for c in crashes] == ["test:flaky", "test:flaky"]
    assert "crash 1" in crashes[0]["error"]


async def test_a_supervised_task_stops_when_cancelled():
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = supervised("test:forever", forever)
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_sync_loop_whose_runtime_stream_breaks_is_restarted(db):
    """The stream of a runtime's updates fails once (a watch that broke); the sync task
    is restarted, takes the stream again and applies what comes."""
    from types import SimpleNamespace

    from app.core.broker import Broker, job_topic
    from app.core.sync import RuntimeSync
    from app.domain.jobs import JobStatus
    from app.runtime.base import JobUpdate
    from tests.store.test_repositories import add, make_job

    await add(db, make_job("j-sup1", status=JobStatus.RUNNING))
    watches: list[int] = []

    class BreaksOnce:
        pool = SimpleNamespace(id="flaky")

        async def watch(self):
            watches.append(1)
            if len(watches) == 1:
                raise ConnectionResetError("the watch broke")
            yield JobUpdate(job_id="j-sup1", status=JobStatus.SUCCEEDED, exit_code=0)
            await asyncio.Event().wait()

    broker = Broker()
    sync = RuntimeSync(db=db, broker=broker)
    with capture_logs() as logs:
        async with broker.subscribe(job_topic("j-sup1")) as changes:
            sync.start(BreaksOnce())
            async with asyncio.timeout(30):
                assert (await changes.get()).status is JobStatus.SUCCEEDED
        await sync.close()
    assert len(watches) == 2
    assert any(e["event"] == "task.crashed" and e["task"] == "sync:flaky" for e in logs)
